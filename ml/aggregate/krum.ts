/**
 * Krum and Multi-Krum (Blanchard et al. 2017). The score of gradient i is the sum of its
 * squared distances to its n - f - 2 nearest neighbours; Krum returns the gradient with the
 * lowest score, Multi-Krum the average of the m lowest-scoring ones (scored once, as in the
 * paper). Ties go to the lower index, so the result depends only on the inputs' order.
 */

/** pairwise squared L2 distances, n x n row-major, in float64 */
export function pairwiseSquaredDistances (gradients: readonly Float32Array[], d: number): Float64Array {
  const n = gradients.length
  const dist = new Float64Array(n * n)
  for (let a = 0; a < n; a++) {
    const ga = gradients[a]
    for (let b = a + 1; b < n; b++) {
      const gb = gradients[b]
      let s = 0
      for (let j = 0; j < d; j++) {
        const diff = ga[j] - gb[j]
        s += diff * diff
      }
      dist[a * n + b] = s
      dist[b * n + a] = s
    }
  }
  return dist
}

export function krumScores (gradients: readonly Float32Array[], d: number, f: number): Float64Array {
  const n = gradients.length
  const neighbours = n - f - 2
  const dist = pairwiseSquaredDistances(gradients, d)
  const scores = new Float64Array(n)
  const row = new Float64Array(n - 1)
  for (let a = 0; a < n; a++) {
    let k = 0
    for (let b = 0; b < n; b++) if (b !== a) row[k++] = dist[a * n + b]
    row.sort()
    let s = 0
    for (let i = 0; i < neighbours; i++) s += row[i]
    scores[a] = s
  }
  return scores
}

/** indices of the m lowest scores, ties broken by index, returned in increasing index order */
export function selectLowest (scores: Float64Array, m: number): number[] {
  const order = Array.from(scores.keys()).sort((a, b) => scores[a] - scores[b] || a - b)
  return order.slice(0, m).sort((a, b) => a - b)
}

export function aggregateKrum (gradients: readonly Float32Array[], d: number, f: number, out: Float32Array = new Float32Array(d)): Float32Array {
  const [best] = selectLowest(krumScores(gradients, d, f), 1)
  out.set(gradients[best])
  return out
}

export function aggregateMultiKrum (gradients: readonly Float32Array[], d: number, f: number, m: number, out: Float32Array = new Float32Array(d)): Float32Array {
  const selected = selectLowest(krumScores(gradients, d, f), m).map((i) => gradients[i])
  for (let j = 0; j < d; j++) {
    let sum = 0
    for (let i = 0; i < selected.length; i++) sum += selected[i][j]
    out[j] = sum / selected.length
  }
  return out
}
