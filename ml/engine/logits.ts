/** Small helpers over [N, classes] logits, in float64 where it matters. */

export function oneHot(labels: Int32Array, classes: number): Float32Array {
  const out = new Float32Array(labels.length * classes)
  for (let i = 0; i < labels.length; i++) out[i * classes + labels[i]] = 1
  return out
}

export function countCorrect(logits: Float32Array, labels: Int32Array, classes: number): number {
  let correct = 0
  for (let i = 0; i < labels.length; i++) {
    let best = 0
    for (let c = 1; c < classes; c++) {
      if (logits[i * classes + c] > logits[i * classes + best]) best = c
    }
    if (best === labels[i]) correct++
  }
  return correct
}

/** Sum over samples of -log softmax(logits)[label]. */
export function crossEntropySum(logits: Float32Array, labels: Int32Array, classes: number): number {
  let sum = 0
  for (let i = 0; i < labels.length; i++) {
    let max = -Infinity
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[i * classes + c])
    let z = 0
    for (let c = 0; c < classes; c++) z += Math.exp(logits[i * classes + c] - max)
    sum += Math.log(z) + max - logits[i * classes + labels[i]]
  }
  return sum
}
