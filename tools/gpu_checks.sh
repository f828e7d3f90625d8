#!/usr/bin/env bash
# The GPU checks of the Triton path (issue 8) in one command, on a CUDA machine:
#   tests  the CUDA-marked tests (compiled kernels, statistics on CUDA, AMP training steps)
#   bench  benchmarks/bench_dropblock.py --device cuda (op vs the x * mask floor)
#   train  benchmarks/bench_train_step.py (RetinaNet R50-FPN step with / without DropBlock)
#   profile benchmarks/bench_dropblock.py --profile (torch.profiler: each kernel's GPU time,
#          the op's device time against the floor's, host time per call)
#   tune   benchmarks/bench_dropblock.py --tune (the Triton path's launch sizes): last, in
#          whatever time the others leave; the rows it printed before it was stopped count
#
#   bash tools/gpu_checks.sh                 # tests, bench, train, profile, tune, in that order
#   bash tools/gpu_checks.sh bench train     # some of them
#   BUDGET=300 bash tools/gpu_checks.sh      # all steps together in at most 300 s
#   bash tools/gpu_checks.sh --smoke         # CPU dry run of the script itself (tiny sizes)
#
# It runs $PYTHON as it is: by default the checkout's .venv/bin/python where `make env` made
# one (a CPU --smoke run here), else python3 (the GPU machine's, which has PyTorch). On a
# machine with PyTorch but no detectron2 and no network, .gpu-site (tools/prepare_gpu_site.py; git ignores it, so the device tool must
# carry it: carry [".gpu-site"]) goes first on PYTHONPATH; a $PYTHON that imports detectron2
# by itself does not get it (its packages are built for the GPU machine's Python). Without
# detectron2 and dropblock_det importable it stops at once, saying so, instead of failing
# every step.
# Each step's output goes to RESULTS (default $OUT, else gpu-results/) as <step>.txt, under a
# first line naming its command and time limit, after environment.txt (the mode, steps and
# budget asked for, versions, GPU, commit or, in a copy without .git, a source fingerprint); an
# earlier run's files there move to RESULTS/previous_runs/. A step that fails or runs past
# its time limit is reported and the next one still runs. All steps together stay within
# BUDGET seconds (default 560: one 600-second device call, which a 15-minute device lease
# allows only once): each step runs for at most its own limit or what is left of BUDGET,
# and a step with nothing left is skipped (one that ignores the SIGTERM at its limit is killed
# KILL_AFTER seconds later, default 15). Where torch sees no CUDA device, `tests` is not
# run (every test it selects would be skipped: a pass that tested nothing) and the other
# steps fail in one line each. The exit status is the number of steps that did not finish
# (failed, stopped at a limit, or skipped).
set -uo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
RESULTS=${RESULTS:-${OUT:-gpu-results}}
SMOKE=0
steps=()
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    tests|bench|train|profile|tune) steps+=("$arg") ;;
    *) echo "gpu_checks.sh: unknown argument '$arg' (steps: tests bench train profile tune; option: --smoke)" >&2; exit 2 ;;
  esac
done
[ ${#steps[@]} -eq 0 ] && steps=(tests bench train profile tune)
BUDGET=${BUDGET:-560}
if ! [[ "$BUDGET" =~ ^[1-9][0-9]*$ ]]; then
  echo "gpu_checks.sh: BUDGET must be a whole number of seconds > 0, got '$BUDGET'" >&2
  exit 2
fi
# Seconds a step that does not end on timeout's SIGTERM gets before SIGKILL.
KILL_AFTER=${KILL_AFTER:-15}
if ! [[ "$KILL_AFTER" =~ ^[1-9][0-9]*$ ]]; then
  echo "gpu_checks.sh: KILL_AFTER must be a whole number of seconds > 0, got '$KILL_AFTER'" >&2
  exit 2
fi
started=$(date +%s)

export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# detectron2 imports OpenCV when it is installed (setup_environment) and lets any error but a
# missing module through: an OpenCV built against another numpy (on a GPU image) would stop
# every step, and none of them needs it.
if [ -z "${DETECTRON2_DISABLE_CV2:-}" ] && ! cv2_error=$($PYTHON -c "import cv2" 2>&1) \
   && ! grep -q "No module named 'cv2'" <<<"$cv2_error"; then
  echo "gpu_checks.sh: cv2 does not import ($(tail -1 <<<"$cv2_error")): running with DETECTRON2_DISABLE_CV2=1"
  export DETECTRON2_DISABLE_CV2=1
fi
# The whole import, not `import detectron2` alone: a detectron2 that imports but whose
# modules fail (v0.6 under Pillow >= 10) must give way to .gpu-site's.
preflight=$($PYTHON -c "import dropblock_det" 2>&1)
importable=$?
if [ "$importable" -ne 0 ] && [ -d .gpu-site ]; then
  export PYTHONPATH="$PWD/.gpu-site:$PYTHONPATH"
  preflight=$($PYTHON -c "import dropblock_det" 2>&1)
  importable=$?
fi
if [ "$importable" -ne 0 ]; then
  echo "gpu_checks.sh: $PYTHON cannot import detectron2 and dropblock_det, so no step can run:" >&2
  echo "$preflight" | tail -3 >&2
  if [ -d .gpu-site ]; then
    echo "gpu_checks.sh: not even with .gpu-site on PYTHONPATH: was it built for this Python" \
         "(tools/prepare_gpu_site.py --python-version, see .gpu-site/GPU_SITE.txt)?" >&2
  else
    echo "gpu_checks.sh: on a machine without detectron2, build .gpu-site here first" \
         "(python tools/prepare_gpu_site.py) and carry it (device tool: carry [\".gpu-site\"])" >&2
  fi
  exit "${#steps[@]}"
fi
mkdir -p "$RESULTS"
# An earlier run's results are moved aside, never overwritten.
if [ -e "$RESULTS/environment.txt" ]; then
  previous="$RESULTS/previous_runs/$(date -u +%Y%m%dT%H%M%SZ)-$$"
  mkdir -p "$previous" && mv "$RESULTS"/*.txt "$previous"/
  echo "gpu_checks.sh: the earlier results in $RESULTS are now in $previous"
fi

# Seconds per step, at most; BUDGET caps them all together. Measured on the H200 (2026-12-04,
# benchmarks/results/2026-12-04-H200): tests 103-115 s (57 CUDA tests then, 82 now), bench
# 27 s, train 53 s, tune 41 s (22 variants then, 36 now); profile not yet run there.
declare -A LIMIT=([tests]=200 [bench]=120 [train]=240 [profile]=90 [tune]=400)
if [ "$SMOKE" = 1 ]; then
  # CPU-sized versions of the same commands: they check the script, not the GPU.
  declare -A CMD=(
    [tests]="$PYTHON -m pytest -v -ra --durations=15 -p no:cacheprovider -m cuda tests/layers/test_drop_block_triton.py"
    [bench]="$PYTHON benchmarks/bench_dropblock.py --device cpu --shape 2,8,16,20 --repeats 1"
    [train]="$PYTHON benchmarks/bench_train_step.py --quick"
    [profile]="$PYTHON benchmarks/bench_dropblock.py --profile --device cpu --shape 2,8,16,20 --calls 2"
    [tune]="env TRITON_INTERPRET=1 $PYTHON benchmarks/bench_dropblock.py --tune --quick --device cpu --shape 1,2,8,12 --repeats 1 --variants defaults;tile_units=64"
  )
else
  declare -A CMD=(
    [tests]="$PYTHON -m pytest -v -ra --durations=15 -p no:cacheprovider -m cuda tests"
    [bench]="$PYTHON benchmarks/bench_dropblock.py --device cuda"
    [train]="$PYTHON benchmarks/bench_train_step.py --device cuda"
    [profile]="$PYTHON benchmarks/bench_dropblock.py --profile --device cuda"
    [tune]="$PYTHON benchmarks/bench_dropblock.py --tune --device cuda"
  )
fi

{
  date -u
  # What was asked: a --smoke run's steps ran CPU-sized commands and measured nothing.
  if [ "$SMOKE" = 1 ]; then mode="--smoke (a CPU dry run of this script: nothing measured)"; else mode="GPU run"; fi
  echo "gpu_checks.sh $mode; steps: ${steps[*]}; BUDGET $BUDGET s; KILL_AFTER $KILL_AFTER s"
  nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not available"
  # Which code ran: the commit where this checkout is a git work tree (a copy made without
  # .git is not), and in any case a fingerprint of the source folders' contents.
  if [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$PWD" ] && commit=$(git rev-parse HEAD 2>/dev/null); then
    echo "commit $commit ($(git status --porcelain --untracked-files=no 2>/dev/null | wc -l) tracked files changed since)"
  else
    echo "commit: unknown (no git work tree here: match the source fingerprint below)"
  fi
  $PYTHON - <<'EOF'
import hashlib, pathlib, platform, torch
try:
    import triton; tv = triton.__version__
except ImportError:
    tv = "not importable"
import detectron2, numpy
cuda = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print(f"python {platform.python_version()}, torch {torch.__version__}, triton {tv}, "
      f"detectron2 {detectron2.__version__} ({detectron2.__file__}), numpy {numpy.__version__}; {cuda}")
# detectron2 main still calls itself 0.6: .gpu-site's manifest names the revision it was built from.
manifest = pathlib.Path(detectron2.__file__).parent.parent / "GPU_SITE.txt"
if manifest.is_file():
    print(".gpu-site: " + " ".join(line for line in manifest.read_text().splitlines() if line.startswith("detectron2 ")))
# git's blob id of each file by path, so that a commit's own listing gives the same digest.
folders = ("benchmarks", "configs", "dropblock_det", "tests", "tools")
files = sorted(p.as_posix() for f in folders for p in pathlib.Path(f).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts)
listing = ""
for path in files:
    data = pathlib.Path(path).read_bytes()
    listing += hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() + " " + path + "\n"
print(f"source fingerprint {hashlib.sha256(listing.encode()).hexdigest()[:16]} ({len(files)} files; at a commit: "
      f"git ls-files -s {' '.join(folders)} | awk '{{print $2, $4}}' | sha256sum | cut -c1-16)")
EOF
} 2>&1 | tee "$RESULTS/environment.txt"
# Without a CUDA device pytest skips every cuda-marked test and exits 0: not a pass.
no_cuda=0
[ "$SMOKE" = 0 ] && grep -q "; no CUDA device$" "$RESULTS/environment.txt" && no_cuda=1

failed=0
for step in "${steps[@]}"; do
  left=$(( BUDGET - ($(date +%s) - started) ))
  if [ "$left" -le 0 ]; then
    echo "== $step: skipped, nothing left of the ${BUDGET} s budget" | tee "$RESULTS/$step.txt"
    failed=$((failed + 1))
    continue
  fi
  if [ "$step" = tests ] && [ "$no_cuda" = 1 ]; then
    echo "== tests: not run: torch sees no CUDA device (environment.txt), so every cuda-marked" \
         "test would be skipped" | tee "$RESULTS/$step.txt"
    failed=$((failed + 1))
    continue
  fi
  limit=$(( left < LIMIT[$step] ? left : LIMIT[$step] ))
  # In the step's file too: on the device only the results folder and the output's tail come back.
  echo "== $step: ${CMD[$step]} (limit $limit s)" | tee "$RESULTS/$step.txt"
  start=$(date +%s)
  # -v: one line per test as it ends, so a step stopped at its limit still names what ran;
  # -ra: why each test that did not pass was skipped or failed (-rfE left skips unexplained).
  # -k: a process that ignores SIGTERM is killed KILL_AFTER s later.
  timeout -k "$KILL_AFTER" "$limit" ${CMD[$step]} 2>&1 | tee -a "$RESULTS/$step.txt"
  rc=${PIPESTATUS[0]}
  took=$(( $(date +%s) - start ))
  why=""
  # 137: timeout's SIGKILL, KILL_AFTER s after a SIGTERM the step did not end on (killed sooner, say
  # for memory, it is no stop at the limit).
  if [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && [ "$took" -ge "$limit" ]; }; then
    why=" (stopped at its $limit s limit"
    [ "$limit" -lt "${LIMIT[$step]}" ] && why+=": the rest of the ${BUDGET} s budget"
    [ "$rc" -eq 137 ] && why+="; killed, as it did not end on SIGTERM"
    why+=")"
  fi
  echo "== $step: exit $rc after $took s$why" | tee -a "$RESULTS/$step.txt"
  [ "$rc" -ne 0 ] && failed=$((failed + 1))
done
exit "$failed"
