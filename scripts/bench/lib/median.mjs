// The one median of the benchmarks (scripts/bench.mjs runs only the files directly in scripts/bench/,
// so this helper is not taken for a benchmark): the middle value, the lower of the two middle ones for
// an even count, so a figure is always a value that was measured.
export function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)]
}
