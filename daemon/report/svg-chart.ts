/**
 * Line charts as inline SVG strings: no script, no external asset, so a report opens offline
 * and prints. Every point is a <circle data-series=... data-x=... data-y=...> so tests (and
 * readers with dev tools) can check the plotted values.
 */

export interface ChartSeries {
  /** machine name, e.g. 'validation-loss' (data-series attribute) */
  readonly id: string
  readonly label: string
  readonly color: string
  readonly points: ReadonlyArray<readonly [number, number]>
  /** draw as a step function (values hold until the next point), e.g. membership or lr */
  readonly step?: boolean
}

export interface LineChartOptions {
  readonly id: string
  readonly title: string
  readonly xLabel: string
  readonly yLabel: string
  readonly series: readonly ChartSeries[]
  readonly width?: number
  readonly height?: number
  readonly formatY?: (y: number) => string
  readonly formatX?: (x: number) => string
  /** include zero on the y axis */
  readonly yFromZero?: boolean
  /** y axis in log scale (positive values only), e.g. a learning rate */
  readonly logY?: boolean
  /** whole-number ticks on the y axis (counts) */
  readonly integerY?: boolean
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')
}

const round = (v: number): string => (Math.round(v * 100) / 100).toString()

/** "nice" tick values covering [min, max] (1, 2, 5 x 10^k steps) */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min]
  const raw = (max - min) / count
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw
  const ticks: number[] = []
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)))
  return ticks
}

export function lineChart(options: LineChartOptions): string {
  const width = options.width ?? 560
  const height = options.height ?? 260
  const margin = { left: 64, right: 16, top: 32, bottom: 44 }
  const fy = options.formatY ?? ((y: number) => String(Number(y.toPrecision(3))))
  const fx = options.formatX ?? ((x: number) => String(x))
  const all = options.series.flatMap((s) => s.points)
  const header = `<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="${escapeHtml(options.id)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(options.title)}">` +
    `<text class="title" x="${margin.left}" y="18">${escapeHtml(options.title)}</text>`
  if (all.length === 0) {
    return `${header}<text class="empty" x="${width / 2}" y="${height / 2}" text-anchor="middle">no data yet</text></svg>`
  }
  const ty = (y: number): number => options.logY === true ? Math.log10(y) : y
  let xMin = Math.min(...all.map((p) => p[0]))
  let xMax = Math.max(...all.map((p) => p[0]))
  let yMin = Math.min(...all.map((p) => ty(p[1])))
  let yMax = Math.max(...all.map((p) => ty(p[1])))
  if (options.yFromZero === true && options.logY !== true) yMin = Math.min(0, yMin)
  if (xMax === xMin) { xMin -= 1; xMax += 1 }
  if (yMax === yMin) { const pad = Math.abs(yMax) * 0.1 || 1; yMin -= pad; yMax += pad }
  const yPad = (yMax - yMin) * 0.05
  if (!(options.yFromZero === true && yMin === 0)) yMin -= yPad
  yMax += yPad
  // axes and grid
  // log scale (a learning rate halved on plateaus): tick the values the series take
  let yTicks = options.logY === true
    ? [...new Set(all.map((p) => p[1]))].sort((a, b) => a - b).filter((_, i, list) => list.length <= 6 || i % Math.ceil(list.length / 6) === 0)
    : niceTicks(yMin, yMax, 5)
  if (options.integerY === true) yTicks = yTicks.filter((t) => Number.isInteger(t))
  if (yTicks.length === 0) yTicks = [options.logY === true ? 10 ** yMin : yMin]
  // room for the longest tick label left of the axis and the rotated axis label beyond it (a
  // learning rate's 0.0000061 ran past the edge and under the label): at most ~8 px a character at 11 px
  margin.left = Math.max(margin.left, 30 + Math.max(...yTicks.map((t) => fy(t).length)) * 8)
  const plotW = width - margin.left - margin.right
  const plotH = height - margin.top - margin.bottom
  const sx = (x: number): number => margin.left + ((x - xMin) / (xMax - xMin)) * plotW
  const sy = (y: number): number => margin.top + plotH - ((ty(y) - yMin) / (yMax - yMin)) * plotH

  const parts: string[] = [header]
  for (const t of yTicks) {
    const y = round(sy(t))
    parts.push(`<line class="grid" x1="${margin.left}" x2="${margin.left + plotW}" y1="${y}" y2="${y}"/>`)
    parts.push(`<text class="tick" x="${margin.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeHtml(fy(t))}</text>`)
  }
  const xTicks = niceTicks(xMin, xMax, 6).filter((t) => Number.isInteger(t))
  for (const t of xTicks) {
    const x = round(sx(t))
    parts.push(`<text class="tick" x="${x}" y="${margin.top + plotH + 16}" text-anchor="middle">${escapeHtml(fx(t))}</text>`)
  }
  parts.push(`<line class="axis" x1="${margin.left}" x2="${margin.left}" y1="${margin.top}" y2="${margin.top + plotH}"/>`)
  parts.push(`<line class="axis" x1="${margin.left}" x2="${margin.left + plotW}" y1="${margin.top + plotH}" y2="${margin.top + plotH}"/>`)
  parts.push(`<text class="label" x="${margin.left + plotW / 2}" y="${height - 6}" text-anchor="middle">${escapeHtml(options.xLabel)}</text>`)
  parts.push(`<text class="label" transform="translate(14 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(options.yLabel)}</text>`)

  // series
  let legendX = margin.left + plotW
  const legend: string[] = []
  for (const s of [...options.series].reverse()) {
    const w = 22 + s.label.length * 6.5
    legendX -= w
    legend.push(`<g class="legend"><rect x="${round(legendX)}" y="10" width="10" height="10" fill="${s.color}"/><text x="${round(legendX + 14)}" y="19">${escapeHtml(s.label)}</text></g>`)
  }
  for (const s of options.series) {
    const pts = s.points.map(([x, y]) => [sx(x), sy(y)] as const)
    const path: string[] = []
    pts.forEach(([x, y], i) => {
      if (i > 0 && s.step === true) path.push(`${round(x)},${round(pts[i - 1][1])}`)
      path.push(`${round(x)},${round(y)}`)
    })
    parts.push(`<polyline class="line" data-series="${escapeHtml(s.id)}" data-points="${s.points.length}" fill="none" stroke="${s.color}" stroke-width="2" points="${path.join(' ')}"/>`)
    s.points.forEach(([x, y], i) => {
      parts.push(`<circle class="pt" data-series="${escapeHtml(s.id)}" data-x="${x}" data-y="${y}" cx="${round(pts[i][0])}" cy="${round(pts[i][1])}" r="3" fill="${s.color}"><title>${escapeHtml(`${s.label}: ${fx(x)} → ${fy(y)}`)}</title></circle>`)
    })
  }
  parts.push(...legend)
  parts.push('</svg>')
  return parts.join('')
}
