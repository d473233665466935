/**
 * The run report as one self-contained HTML page: inline CSS, charts drawn as inline SVG (no
 * script, no font, image or stylesheet from anywhere), the report's JSON embedded for tools.
 * Sections: summary, loss / accuracy / learning-rate / membership curves, the per-stage table
 * (Table I of the paper), members, bytes by peer, digests, the job config.
 */
import { CPU_PERCENT_MIN_MS } from '../metrics/stage-figure-schema.js'
import { formatLearningRate, formatLoss } from './format-metrics.js'
import { escapeHtml, lineChart } from './svg-chart.js'
import type { RunReport } from './report-schema.js'

const COLORS = { train: '#2563eb', validation: '#dc2626', accuracy: '#16a34a', lr: '#9333ea', members: '#ea580c' }

/** How each stage column is printed; data-value keeps the exact number. */
export const STAGE_COLUMNS = [
  { field: 'count', label: 'count', format: (v: number) => String(v) },
  { field: 'meanMs', label: 'mean ms', format: (v: number) => v.toFixed(2) },
  { field: 'medianMs', label: 'median ms', format: (v: number) => v.toFixed(2) },
  { field: 'p95Ms', label: 'p95 ms', format: (v: number) => v.toFixed(2) },
  { field: 'maxMs', label: 'max ms', format: (v: number) => v.toFixed(2) },
  { field: 'totalMs', label: 'total s', format: (v: number) => (v / 1000).toFixed(2) },
  { field: 'cpuPercent', label: 'CPU %', format: (v: number | null) => v === null ? '-' : v.toFixed(0) },
  { field: 'rssMiB', label: 'RSS MiB', format: (v: number) => v.toFixed(0) }
] as const

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1f2937}
header{background:#111827;color:#f9fafb;padding:18px 28px}header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#cbd5e1;font-size:13px}
main{padding:20px 28px;max-width:1240px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:14px 18px;margin:0 0 16px}
h2{font-size:15px;margin:0 0 10px}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #e5e7eb;border-radius:6px;padding:8px 12px;min-width:140px}
.card .k{color:#6b7280;font-size:12px}.card .v{font-size:18px;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px}
svg.chart{background:#fff;max-width:100%;height:auto}svg .title{font-weight:600;font-size:13px;fill:#111827}
svg .tick{font-size:11px;fill:#6b7280}svg .label{font-size:12px;fill:#374151}svg .grid{stroke:#eef0f3}svg .axis{stroke:#9ca3af}
svg .legend text{font-size:11px;fill:#374151}svg .empty{fill:#9ca3af}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}th,td{padding:4px 10px;border-bottom:1px solid #eef0f3;text-align:right}
th:first-child,td:first-child{text-align:left}th{color:#6b7280;font-weight:600;font-size:12px}
code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}pre{background:#f9fafb;padding:10px;overflow:auto;margin:0}
.ok{color:#15803d}.bad{color:#b91c1c}.muted{color:#6b7280}`

const loss = (v: number | null): string => v === null ? '-' : formatLoss(v)
const pct = (v: number | null): string => v === null ? '-' : `${(v * 100).toFixed(2)} %`
const short = (id: string): string => id.length > 16 ? `…${id.slice(-12)}` : id

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++ }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`
}

function duration(ms: number | null): string {
  if (ms === null) return '-'
  if (ms < 1000) return `${Math.round(ms)} ms`
  const s = ms / 1000
  return s < 120 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`
}

function card(key: string, value: string, id: string): string {
  return `<div class="card" data-card="${id}"><div class="k">${escapeHtml(key)}</div><div class="v">${escapeHtml(value)}</div></div>`
}

function table(id: string, headers: readonly string[], rows: readonly string[]): string {
  return `<table id="${id}"><thead><tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`
}

function charts(report: RunReport): string {
  const epochs = report.epochs
  const x = (e: RunReport['epochs'][number]): number => e.epoch + 1
  const series = <K extends 'trainLoss' | 'validationLoss' | 'validationAccuracy' | 'lr'>(key: K) =>
    epochs.filter((e) => e[key] !== null).map((e) => [x(e), e[key] as number] as const)
  const positiveLr = epochs.every((e) => e.lr > 0)
  return [
    lineChart({
      id: 'loss', title: 'Loss per epoch', xLabel: 'epoch', yLabel: 'loss',
      series: [
        { id: 'train-loss', label: 'train (this peer\'s batches)', color: COLORS.train, points: series('trainLoss') },
        { id: 'validation-loss', label: 'validation', color: COLORS.validation, points: series('validationLoss') }
      ]
    }),
    lineChart({
      id: 'accuracy', title: 'Validation accuracy per epoch', xLabel: 'epoch', yLabel: 'accuracy %',
      formatY: (y) => `${(y * 100).toFixed(y >= 0.995 ? 1 : 0)}`,
      series: [{ id: 'validation-accuracy', label: 'validation accuracy', color: COLORS.accuracy, points: series('validationAccuracy') }]
    }),
    lineChart({
      id: 'lr', title: 'Learning rate per epoch (ReduceLROnPlateau)', xLabel: 'epoch', yLabel: 'learning rate', logY: positiveLr,
      series: [{ id: 'lr', label: 'learning rate', color: COLORS.lr, points: series('lr'), step: true }]
    }),
    lineChart({
      id: 'membership', title: 'Members over steps', xLabel: 'step', yLabel: 'members', yFromZero: true, integerY: true,
      formatY: (y) => String(Math.round(y)),
      series: [{ id: 'members', label: 'members', color: COLORS.members, points: report.membership.timeline.map((p) => [p.step, p.members] as const), step: true }]
    })
  ].join('')
}

function stageTable(report: RunReport): string {
  if (report.stages.length === 0) return '<p class="muted">no stage timings (the job ran no step on this peer, or the report comes from a checkpoint)</p>'
  const rows = report.stages.map((s) => `<tr data-stage="${escapeHtml(s.stage)}"><td>${escapeHtml(s.stage)}</td>${STAGE_COLUMNS.map((c) => {
    const value = (s as unknown as Record<string, number | null>)[c.field]
    // CPU % is null for a stage too short to measure it: an empty data-value, '-' in the cell
    return `<td data-field="${c.field}" data-value="${value ?? ''}">${(c.format as (v: number | null) => string)(value)}</td>`
  }).join('')}</tr>`)
  const note = report.stages.some((st) => st.cpuPercent === null)
    ? `<p class="muted">CPU % -: not measured for stages under ${CPU_PERCENT_MIN_MS} ms a call (Linux credits other threads' CPU time in scheduler ticks, so a short stage reads time spent before it)</p>`
    : ''
  return table('stages', ['stage', ...STAGE_COLUMNS.map((c) => c.label)], rows) + note
}

function membersTable(report: RunReport): string {
  const m = report.membership
  if (m.members.length === 0) return '<p class="muted">no membership recorded</p>'
  const rows = m.members.map((p) => `<tr data-peer="${escapeHtml(p.peerId)}"><td><code title="${escapeHtml(p.peerId)}">${escapeHtml(short(p.peerId))}</code>${p.peerId === report.peer.id ? ' (this peer)' : ''}</td><td>${p.joinStep}</td><td>${p.leaveStep ?? '-'}</td><td>${p.exit === 'evicted' ? '<span class="bad">evicted</span>' : p.exit === 'left' ? 'left' : '<span class="muted">member</span>'}${earlierExits(m, p)}</td></tr>`)
  return table('members', ['peer', 'joined at step', 'left at step', 'status'], rows) +
    `<p class="muted">${m.joins.filter((j) => j.step > 0).length} joined mid-job, ${m.evictions.length} evicted, ${m.leaves.length} left; membership version ${m.version}</p>`
}

/**
 * A member's exits before its current membership (evicted or left, then admitted again: a row
 * read '0 - member' of a peer the summary counted as evicted), e.g. '; evicted at 407, back at 407'.
 */
function earlierExits(m: RunReport['membership'], p: RunReport['membership']['members'][number]): string {
  const exits = [...m.evictions.map((e) => ({ ...e, how: 'evicted' })), ...m.leaves.map((e) => ({ ...e, how: 'left' }))]
    .filter((e) => e.peerId === p.peerId && e.step !== p.leaveStep)
    .sort((a, b) => a.step - b.step)
  if (exits.length === 0) return ''
  const backAt = (step: number): string => {
    const join = m.joins.find((j) => j.peerId === p.peerId && j.step >= step)
    return join === undefined ? '' : `, back at ${join.step}`
  }
  return `; ${exits.map((e) => `${e.how} at ${e.step}${backAt(e.step)}`).join('; ')}`
}

function bytesTable(report: RunReport): string {
  const n = report.network
  const rows = n.byPeer.map((p) => `<tr data-peer="${escapeHtml(p.peer)}"><td><code title="${escapeHtml(p.peer)}">${escapeHtml(short(p.peer))}</code></td><td data-value="${p.bytesSent}">${bytes(p.bytesSent)}</td><td data-value="${p.bytesReceived}">${bytes(p.bytesReceived)}</td></tr>`)
  rows.push(`<tr data-peer="total"><td><b>all (TCP)</b></td><td data-value="${n.bytesSent}">${bytes(n.bytesSent)}</td><td data-value="${n.bytesReceived}">${bytes(n.bytesReceived)}</td></tr>`)
  return table('bytes', ['peer', 'sent', 'received'], rows) + `<p class="muted">${n.messagesSent} gradient messages sent, ${n.messagesReceived} received</p>`
}

function digestsSection(report: RunReport): string {
  const d = report.digests
  const peers = Object.entries(d.peers)
  const verdict = d.agree === null ? '<span class="muted">no other member\'s digest recorded</span>' : d.agree ? '<span class="ok">all equal</span>' : '<span class="bad">differ</span>'
  const rows = peers.map(([peer, digest]) => `<tr><td><code title="${escapeHtml(peer)}">${escapeHtml(short(peer))}</code></td><td><code>${escapeHtml(digest.slice(0, 16))}</code></td></tr>`)
  // a finished job's own digest is of its final parameters; the members' are of the last step's
  // start, compared with this peer's there (a trial read two different digests above 'all equal')
  const finalDigest = report.result !== null && d.lastStep !== undefined && d.lastStep !== null && d.lastStep !== d.own
  const last = d.lastStep === undefined || d.lastStep === null ? '' : `this peer <code>${escapeHtml(d.lastStep.slice(0, 16))}</code>; `
  return `<p>this peer${finalDigest ? '\'s final parameters' : ''}: <code id="own-digest">${escapeHtml(d.own ?? '-')}</code></p>` +
    (peers.length > 0 ? `<p>at the start of the last step: ${last}the digests the members sent with its gradients: ${verdict}</p>${table('digests', ['peer', 'sha256 (first 16)'], rows)}` : `<p>${verdict}</p>`)
}

/** The whole page; `report` is embedded as JSON too (id="report-data"). */
export function renderRunReportHtml(report: RunReport): string {
  const r = report.result
  const job = report.job
  const lastMembers = report.membership.timeline.at(-1)?.members
  const title = `p2pmld run report: job ${job.id ?? '(unnamed)'}`
  const config = job.config as { model?: unknown, dataset?: unknown, batchSize?: unknown }
  const json = JSON.stringify(report).replace(/</g, '\\u003c')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>
<header><h1>${escapeHtml(title)}</h1><p>${escapeHtml(String(config.model ?? '?'))} on ${escapeHtml(String(config.dataset ?? '?'))}, batch ${escapeHtml(String(config.batchSize ?? '?'))} per peer · peer <code>${escapeHtml(report.peer.name ?? short(report.peer.id))}</code> · ${escapeHtml(report.source)} report, ${escapeHtml(report.generatedAt)}</p></header>
<main>
<section id="summary"><h2>Summary</h2><div class="cards">
${card('state', r === null ? job.state : `finished (${r.reason})`, 'state')}
${card('test accuracy', pct(r?.testAccuracy ?? null), 'test-accuracy')}
${card('last validation accuracy', pct(report.epochs.at(-1)?.validationAccuracy ?? null), 'validation-accuracy')}
${card('epochs / steps', `${r?.epoch ?? job.epoch} / ${r?.step ?? job.step}`, 'progress')}
${card('learning rate', job.lr === null ? '-' : formatLearningRate(job.lr), 'lr')}
${card('members (last)', lastMembers === undefined ? '-' : String(lastMembers), 'members')}
${card('wall time', duration(report.wallMs), 'wall')}
${card('parameters', job.parameterCount === null ? '-' : job.parameterCount.toLocaleString('en-US'), 'parameters')}
${card('sent / received', `${bytes(report.network.bytesSent)} / ${bytes(report.network.bytesReceived)}`, 'bytes')}
</div></section>
<section id="curves"><h2>Curves</h2><div class="charts">${charts(report)}</div></section>
<section id="stages-section"><h2>Per-stage time, CPU and memory (Table I)</h2>${stageTable(report)}</section>
<section id="membership-section"><h2>Membership</h2>${membersTable(report)}</section>
<section id="bytes-section"><h2>Bytes by peer</h2>${bytesTable(report)}</section>
<section id="digests-section"><h2>Parameter digests</h2>${digestsSection(report)}</section>
<section id="config-section"><h2>Job config</h2><pre>${escapeHtml(JSON.stringify(job.config, null, 2))}</pre></section>
<section id="epochs-section"><h2>Epochs</h2>${table('epochs', ['epoch', 'step', 'train loss', 'val loss', 'val acc', 'lr', 'members', 'at'], report.epochs.map((e) => `<tr><td>${e.epoch + 1}</td><td>${e.step}</td><td>${loss(e.trainLoss)}</td><td>${loss(e.validationLoss)}</td><td>${pct(e.validationAccuracy)}</td><td>${formatLearningRate(e.lr)}</td><td>${e.members ?? '-'}</td><td>${duration(e.atMs)}</td></tr>`))}</section>
</main>
<script type="application/json" id="report-data">${json}</script>
</body></html>
`
}
