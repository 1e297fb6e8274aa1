/**
 * Plain-text tables for terminal output: columns padded to their widest cell, two spaces apart, the
 * last column unpadded. No trailing newline.
 */
export function renderTable (header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)))
  const fmt = (cells: readonly string[]): string => cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)).join('  ')
  return [fmt(header), ...rows.map(fmt)].join('\n')
}
