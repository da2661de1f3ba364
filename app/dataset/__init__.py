"""The dataset folder: its class-folder layout, labelled photos written into it, upload spooling."""
