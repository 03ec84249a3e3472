# Sourced by the whole-process benchmarks written in bash (bench-malloc, bench-python): where the
# latest run of each goes and how it says where and when it was measured. Each benchmark has one
# file under a stable name, overwritten by every run; git keeps the earlier ones.
# BENCH_RESULTS=DIR writes elsewhere (a trial run that should not replace the recorded one).
BENCH_RESULTS=${BENCH_RESULTS:-$PWD/bench-results}
BENCH_LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# write_results NAME LOG COMMAND...: $BENCH_RESULTS/NAME.md from the run's printed output.
write_results() {
  local name=$1 log=$2 file
  shift 2
  file=$BENCH_RESULTS/$name.md
  mkdir -p "$BENCH_RESULTS"
  {
    printf '# %s\n\n`%s`, %s\n\n' "$name" "$*" "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'machine: nproc=%s, cpu=%s, kernel=%s, glibc=%s, memshim_commit=%s, memshim_uncommitted=%s, loadavg_start=%s, loadavg_end=%s\n\n' \
      "$(nproc)" "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(uname -r)" \
      "$(getconf GNU_LIBC_VERSION)" "$(git rev-parse --short HEAD)" \
      "$(git status --porcelain -- shim format src Cargo.toml | tr '\n' ' ')" \
      "$BENCH_LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf '```text\n'
    cat "$log"
    printf '```\n'
  } >"$file"
  echo "results: ${file#"$PWD"/}"
}
