#!/usr/bin/env bash
# The examples' sample files (docs/getting-started.md, docs/api.md): ./samples/{rose,daisy,tulip}.jpg (real flower photos),
# ./samples/new_rose.jpg (a real rose photo, mirrored: new to the dataset) and ./samples/notes.jpg
# (a text file named .jpg, to see an error), made from a flower_photos folder: the first argument,
# else $FLOWERS_DATA_DIR, else ../shared/datasets/flower_photos_dev, else the copy Keras downloads
# to ~/.keras/datasets/flower_photos (python -m app.train does). SAMPLES_DIR writes them elsewhere
# (the docs' example test does).
set -euo pipefail
cd "$(dirname "$0")/.."
candidates=("${1:-}" "${FLOWERS_DATA_DIR:-}" ../shared/datasets/flower_photos_dev \
    "$HOME/.keras/datasets/flower_photos")
source_dir=""
for candidate in "${candidates[@]}"; do
    if [ -n "$candidate" ] && [ -f "$candidate/roses/10503217854_e66a804309.jpg" ]; then
        source_dir=$candidate
        break
    fi
done
if [ -z "$source_dir" ]; then
    echo "error: no flower_photos folder found; pass one: scripts/sample-photos.sh PATH" >&2
    exit 2
fi
out=${SAMPLES_DIR:-samples}
mkdir -p "$out"
install -m 0644 "$source_dir/roses/10503217854_e66a804309.jpg" "$out/rose.jpg"
install -m 0644 "$source_dir/daisy/10172567486_2748826a8b.jpg" "$out/daisy.jpg"
install -m 0644 "$source_dir/tulips/10164073235_f29931d91e.jpg" "$out/tulip.jpg"
# new_rose.jpg must be new to the dataset (the feedback loop's example stores it): a rose photo
# mirrored, so its bytes are in no class folder.
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
"$python" -c 'import sys
from PIL import Image, ImageOps
ImageOps.mirror(Image.open(sys.argv[1])).save(sys.argv[2], quality=92)' \
    "$source_dir/roses/12243068283_ee4c2683e2_n.jpg" "$out/new_rose.jpg"
printf 'just some notes, not a photo\n' > "$out/notes.jpg"
echo "samples/: rose.jpg daisy.jpg tulip.jpg new_rose.jpg notes.jpg (from $source_dir)"
