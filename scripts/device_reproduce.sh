#!/bin/sh
# `ferkit reproduce` on a lent GPU machine (the device tool), in one prepared call.
#
# Here, once (the CSV.gz is 87 MB, over the 64 MiB that travels; the compact copy is 57 MiB):
#   echo /.data/ >> .git/info/exclude
#   ferkit data --data ../shared/datasets/fer2013/fer2013-dev.csv.gz --save .data/fer2013-dev.npz.xz
# Then one device call (carry [".data"], timeout_s 600):
#   sh scripts/device_reproduce.sh .data/fer2013-dev.npz.xz 480 300 bkvgg12-svm [more...]
# arguments: data, seconds allowed for training + evaluation, epochs, experiments.
# What comes back in $OUT: results.tgz (summaries and their figures/, REPRODUCTION.md, metrics.jsonl, curves.png,
# figures, the log) and <experiment>.fp16.safetensors (+ .md card) per finished run (the fp32
# weights and checkpoint.pt are over the 16 MiB a returned file may have; at most 8 files come
# back, so give at most 3 experiments a call). A run the time limit cut short comes back whole
# instead, in 15 MiB parts (BKVGG12: 4 parts; 64 MiB may come back in all):
# `cat NAME.run.tar.part-* | tar xf - -C runs/repro/runs`, then `ferkit train --resume` it.
# Copy the summaries into reproduction/ and `ferkit reproduce` regenerates the report.
set -u
data=$1 seconds=$2 epochs=$3
shift 3
out=${OUT:-/tmp/ferkit-out}
work=/tmp/ferkit-repro
mkdir -p "$out" "$work"
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1 FERKIT_CACHE=/tmp/ferkit-cache MPLBACKEND=Agg
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout "$seconds" python3 -m ferkit.cli.main reproduce --data "$data" --out "$work" \
    --experiments "$@" --epochs "$epochs" \
    --summaries "$work/summaries" --report "$work/REPRODUCTION.md" 2>&1 | tee "$work/log.txt"
for run in "$work"/runs/*/; do
    name=$(basename "$run")
    [ -f "$run/model.safetensors" ] || continue
    if [ -f "$work/summaries/$name.json" ]; then
        # fp16 only if Eval2 moves by <= 0.1 point (fp32 is over the 16 MiB a file may have)
        python3 -m ferkit.cli.main export --model "$run" --dtype fp16 \
            --summary "$work/summaries/$name.json" --verify-data "$data" --method eval2 \
            --out "$out/$name.fp16.safetensors" 2>&1 | tee -a "$work/log.txt"
    else  # cut short by the time limit: bring the run back in parts, to resume elsewhere
        tar cf - -C "$work/runs" "$name" | split -b 15m - "$out/$name.run.tar.part-"
    fi
done
cd "$work" && tar czf "$out/results.tgz" --exclude=checkpoint.pt --exclude=model.safetensors \
    --exclude='*.trace*' $(ls -d log.txt summaries REPRODUCTION.md runs 2>/dev/null)
ls -la "$out"
