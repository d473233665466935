/**
 * Training progress for people: a redrawn bar on a terminal, plain lines otherwise (logs,
 * CI), at most one line per 10 % of an epoch.
 */
export interface ProgressReporter {
  step(epoch: number, stepInEpoch: number, stepsInEpoch: number, loss: number): void
  line(text: string): void
  done(): void
}

export function createProgressReporter(stream: NodeJS.WriteStream = process.stderr, totalEpochs: number): ProgressReporter {
  const tty = stream.isTTY === true
  let lastDecile = -1
  let drawn = false
  let lastDraw = 0
  const clear = (): void => {
    if (tty && drawn) stream.write('\r\x1b[2K')
    drawn = false
  }
  return {
    step(epoch, stepInEpoch, stepsInEpoch, loss) {
      const fraction = stepsInEpoch === 0 ? 0 : Math.min(1, stepInEpoch / stepsInEpoch)
      if (tty) {
        const now = performance.now()
        if (now - lastDraw < 100 && stepInEpoch < stepsInEpoch) return
        lastDraw = now
        const width = 30
        const filled = Math.round(fraction * width)
        stream.write(`\r\x1b[2Kepoch ${epoch + 1}/${totalEpochs} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${stepInEpoch}/${stepsInEpoch} loss ${loss.toFixed(4)}`)
        drawn = true
        return
      }
      const decile = Math.floor(fraction * 10)
      if (decile !== lastDecile && decile > 0 && decile < 10) {
        lastDecile = decile
        stream.write(`epoch ${epoch + 1}/${totalEpochs}: ${decile * 10}% (${stepInEpoch}/${stepsInEpoch} steps) loss ${loss.toFixed(4)}\n`)
      }
    },
    line(text) {
      clear()
      lastDecile = -1
      stream.write(text + '\n')
    },
    done() {
      clear()
    }
  }
}
