/**
 * The paper's cost model (equations 1 and 2) fed the paper's own inputs (Tables II and III:
 * VGG-11 on MNIST, four peers, t2.small + Lambda against t2.large) gives the paper's figures.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULT_PRICES, mergePrices, type PriceTable } from '../../config/prices.js'
import { batchesPerEpoch, compareCosts, truncateLikePaper } from '../../daemon/report/cost-model.js'
import { estimateCosts } from '../../daemon/report/estimate.js'

/** Table II (serverless, t2.small + Lambda) and Table III (instance-based, t2.large), as printed. */
const PAPER = [
  { batch: 1024, batches: 15, lambdaMb: 4400, serverlessS: 41.2, lambdaPerS: 0.0000573, serverlessUsd: 0.03567, instanceS: 258, instanceUsd: 0.00665 },
  { batch: 512, batches: 30, lambdaMb: 2800, serverlessS: 28.1, lambdaPerS: 0.0000362, serverlessUsd: 0.03069, instanceS: 278.4, instanceUsd: 0.00717 },
  { batch: 128, batches: 118, lambdaMb: 1800, serverlessS: 12.9, lambdaPerS: 0.0000233, serverlessUsd: 0.03451, instanceS: 330.4, instanceUsd: 0.00851 },
  { batch: 64, batches: 235, lambdaMb: 1700, serverlessS: 10.5, lambdaPerS: 0.0000220, serverlessUsd: 0.05435, instanceS: 394.8, instanceUsd: 0.01017 }
] as const
const T2_SMALL_PER_S = 0.00000639
const T2_LARGE_PER_S = 0.00002578
/** MNIST's 60,000 training digits over four peers */
const MNIST_TRAIN = 60_000

function paperRow(row: typeof PAPER[number]) {
  return compareCosts({
    batchesPerEpoch: row.batches,
    epochs: 1,
    peers: 4,
    instanceBased: { instanceType: 't2.large', pricePerSecond: T2_LARGE_PER_S, secondsPerEpoch: row.instanceS },
    serverless: { instanceType: 't2.small', instancePricePerSecond: T2_SMALL_PER_S, lambdaMemoryMb: row.lambdaMb, lambdaPricePerSecond: row.lambdaPerS, secondsPerEpoch: row.serverlessS, requestFeesPerBatch: 0 }
  })
}

describe('the paper\'s cost figures from its own inputs', () => {
  it('counts the batches of Table II from MNIST over four peers', () => {
    expect(PAPER.map((r) => batchesPerEpoch(MNIST_TRAIN, 4, r.batch))).toEqual(PAPER.map((r) => r.batches))
  })

  it('VGG-11, batch 1024: $0.03567 serverless against $0.00665 instance-based, 5.36x', () => {
    const c = paperRow(PAPER[0])
    expect(truncateLikePaper(c.serverless.costPerPeerPerEpoch)).toBe(0.03567)
    expect(truncateLikePaper(c.instanceBased.costPerPeerPerEpoch)).toBe(0.00665)
    expect(c.costRatio.toFixed(2)).toBe('5.36')
    expect(c.cheaper).toBe('instance-based')
    // the paper's trade-off: offload is ~6x faster
    expect(c.speedup.toFixed(2)).toBe('6.26')
  })

  it('reproduces every instance-based figure of Table III', () => {
    for (const row of PAPER) expect(truncateLikePaper(paperRow(row).instanceBased.costPerPeerPerEpoch), `batch ${row.batch}`).toBe(row.instanceUsd)
  })

  it('reproduces the serverless figures of Table II at batch 1024, 512 and 64', () => {
    for (const row of PAPER.filter((r) => r.batch !== 128)) {
      expect(truncateLikePaper(paperRow(row).serverless.costPerPeerPerEpoch), `batch ${row.batch}`).toBe(row.serverlessUsd)
    }
  })

  it('batch 128: the paper prints $0.03451, its own inputs give $0.03554 (the table is inconsistent there)', () => {
    // (0.0000233 x 118 + 0.00000639) x 12.9 = 0.035549...; no reading of the inputs gives 0.03451
    const c = paperRow(PAPER[2])
    expect(truncateLikePaper(c.serverless.costPerPeerPerEpoch)).toBe(0.03554)
    expect(Math.abs(c.serverless.costPerPeerPerEpoch - PAPER[2].serverlessUsd) / PAPER[2].serverlessUsd).toBeLessThan(0.031)
  })

  it('through the price table (per hour, per GB-second) and estimateCosts: the same figures', () => {
    for (const row of PAPER.filter((r) => r.batch !== 128)) {
      const prices: PriceTable = mergePrices({
        ec2PerHour: { 't2.small': T2_SMALL_PER_S * 3600, 't2.large': T2_LARGE_PER_S * 3600 },
        // the paper's Lambda $/s at its memory size, as a $/GB-s rate
        lambda: { perGbSecond: row.lambdaPerS / (row.lambdaMb / 1024), perRequest: 0 },
        stepFunctions: { perStateTransition: 0 },
        s3: { perPutRequest: 0, perGetRequest: 0 }
      })
      const e = estimateCosts({
        model: 'vgg11', batchSize: row.batch, peers: 4, epochs: 1, trainSamples: MNIST_TRAIN,
        instanceType: 't2.large', offloadInstanceType: 't2.small', lambdaMemoryMb: row.lambdaMb, prices,
        instanceSecondsPerEpoch: row.instanceS, offloadSecondsPerEpoch: row.serverlessS
      })
      expect(e.inputs.batchesPerEpoch).toBe(row.batches)
      expect(truncateLikePaper(e.comparison.serverless.costPerPeerPerEpoch), `batch ${row.batch}`).toBe(row.serverlessUsd)
      expect(truncateLikePaper(e.comparison.instanceBased.costPerPeerPerEpoch), `batch ${row.batch}`).toBe(row.instanceUsd)
      // a job is every peer for every epoch
      expect(e.comparison.serverless.costPerJob).toBeCloseTo(e.comparison.serverless.costPerPeerPerEpoch * 4, 12)
    }
  })

  it('the default prices are the ones the paper used for EC2, and add request fees the paper leaves out', () => {
    expect(DEFAULT_PRICES.ec2PerHour['t2.small'] / 3600).toBeCloseTo(T2_SMALL_PER_S, 8)
    expect(DEFAULT_PRICES.ec2PerHour['t2.large'] / 3600).toBeCloseTo(T2_LARGE_PER_S, 8)
    const e = estimateCosts({
      model: 'vgg11', batchSize: 1024, peers: 4, epochs: 10, trainSamples: MNIST_TRAIN,
      instanceType: 't2.large', offloadInstanceType: 't2.small', lambdaMemoryMb: 4400, prices: DEFAULT_PRICES,
      instanceSecondsPerEpoch: 258, offloadSecondsPerEpoch: 41.2
    })
    const s = e.comparison.serverless
    // 15 requests x ($0.0000002 Lambda + 2 x $0.000025 Step Functions + $0.000005 put + $0.0000004 get)
    expect(s.requestFeesPerPeerPerEpoch).toBeCloseTo(15 * (0.0000002 + 2 * 0.000025 + 0.000005 + 0.0000004), 12)
    expect(s.costPerPeerPerEpoch).toBeCloseTo(s.lambdaCostPerPeerPerEpoch + s.instanceCostPerPeerPerEpoch + s.requestFeesPerPeerPerEpoch, 12)
    expect(e.comparison.instanceBased.secondsPerJob).toBe(2580)
    expect(e.comparison.instanceBased.costPerJob).toBeCloseTo(0.0928 / 3600 * 258 * 10 * 4, 10)
  })

  it('says where the Lambda memory came from when nothing was measured', () => {
    const e = estimateCosts({
      model: 'lenet5', batchSize: 64, peers: 4, epochs: 1, trainSamples: MNIST_TRAIN,
      instanceType: 't2.large', offloadInstanceType: 't2.small', prices: DEFAULT_PRICES,
      instanceSecondsPerEpoch: 10, offloadSecondsPerEpoch: 5
    })
    expect(e.notes).toContain('Lambda memory 1769 MB: one full vCPU, no memory measured (--lambda-memory sets it)')
    expect(e.notes.join('\n')).not.toContain('undefined')
  })
})
