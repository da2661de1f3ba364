"""Classifying photos in bulk outside the server (``flowers-predict``): the files to read, the
store's active version run in this process, or a server's API, and the results written out."""
