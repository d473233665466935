/** The loss and learning rate as the epoch lines, the progress bar and `p2pmld status` print them. */
import { describe, expect, it } from 'vitest'
import { formatEpochMetrics, formatLearningRate, formatLoss } from '../../cli/support/format.js'

describe('formatLoss', () => {
  it('keeps four decimals down to 0.001 and three significant digits below, so a small loss never reads as zero', () => {
    expect(formatLoss(2.302585)).toBe('2.3026')
    expect(formatLoss(0.0012345)).toBe('0.0012')
    expect(formatLoss(0.00012345)).toBe('0.000123')
    expect(formatLoss(3.2e-7)).toBe('3.2e-7')
    expect(formatLoss(0)).toBe('0.0000')
    expect(formatLoss(Number.NaN)).toBe('NaN')
    expect(formatLoss(Number.POSITIVE_INFINITY)).toBe('Infinity')
  })
})

describe('formatLearningRate', () => {
  it('prints four significant digits without float noise', () => {
    expect(formatLearningRate(0.1 * 0.5 ** 5)).toBe('0.003125')
    expect(formatLearningRate(0.1 * 0.1 * 0.1)).toBe('0.001')
    expect(formatLearningRate(0.0015625)).toMatch(/^0\.00156[23]$/)
    expect(formatLearningRate(0.03)).toBe('0.03')
  })
})

describe('formatEpochMetrics', () => {
  it('joins the epoch end\'s losses, accuracy and rounded learning rate', () => {
    const e = { trainLoss: 0.123456, validationLoss: 0.00004321, validationAccuracy: 0.98125, lr: 0.1 * 0.1 * 0.1 }
    expect(formatEpochMetrics(e)).toBe('train loss 0.1235  val loss 0.0000432  val acc 98.13 %  lr 0.001')
    expect(formatEpochMetrics(e, ', ')).toBe('train loss 0.1235, val loss 0.0000432, val acc 98.13 %, lr 0.001')
  })
})
