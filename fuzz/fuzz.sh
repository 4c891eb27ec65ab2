#!/usr/bin/env bash
# Fuzzes one target for a while, then minimises its committed corpus.
#
#   fuzz/fuzz.sh <target> [seconds] [libFuzzer flags...]
#                                        (from anywhere; default 180 s; e.g.
#                                        -max_len=65536 past the corpus's sizes)
#
# Builds with cargo-fuzz (AddressSanitizer). On a stable toolchain the
# RUSTC_BOOTSTRAP=1 below lets cargo-fuzz pass its -Z flags; on nightly it is
# harmless. One process, niced: the build machine is shared. New inputs go into
# fuzz/corpus/<target>/; crashes into fuzz/artifacts/<target>/. The corpus is
# then minimised with libFuzzer's set-cover merge on edge coverage alone (hit
# counters off: a few times smaller than `cargo fuzz cmin`'s plain merge, same
# edges), and the hand-made seeds are restored, so `cargo test --test
# fuzz_corpus` replays both.
set -euo pipefail
target=${1:?usage: fuzz/fuzz.sh <target> [seconds]}
secs=${2:-180}
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
nice -n 10 cargo fuzz build "$target"
bin=fuzz/target/x86_64-unknown-linux-gnu/release/$target
mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
nice -n 10 "$bin" "fuzz/corpus/$target" -artifact_prefix="fuzz/artifacts/$target/" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${@:3}"
min=$(mktemp -d)
nice -n 10 "$bin" -set_cover_merge=1 -use_counters=0 "$min" "fuzz/corpus/$target"
rm -rf "fuzz/corpus/$target"
mv "$min" "fuzz/corpus/$target"
chmod 755 "fuzz/corpus/$target"
python3 fuzz/seeds/make_seeds.py
echo "corpus: $(ls "fuzz/corpus/$target" | wc -l) files, $(du -sh --apparent-size "fuzz/corpus/$target" | cut -f1)"
