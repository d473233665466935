import { describe, expect, it } from 'vitest'
import { ADMISSION_WINDOW_MS, createAdmissionWindow } from '../../daemon/job/admission-window.js'

describe('the admission window for joiners of a running job', () => {
  it('admits a joiner on its own at once, and those asking soon after together in one admission', async () => {
    const admissions: string[][] = []
    const window = createAdmissionWindow((peers) => { admissions.push([...peers]) })
    await window.admit('a')
    expect(admissions).toEqual([['a']])
    const asked = performance.now()
    await Promise.all([window.admit('b'), window.admit('c')])
    // one admission for the crowd, at the end of the window
    expect(admissions).toEqual([['a'], ['b', 'c']])
    expect(performance.now() - asked).toBeGreaterThanOrEqual(ADMISSION_WINDOW_MS - 5)
    window.close()
  })

  it('a joiner asking a window after the last admission is admitted at once again', async () => {
    const admissions: string[][] = []
    const window = createAdmissionWindow((peers) => { admissions.push([...peers]) })
    await window.admit('a')
    await new Promise((resolve) => setTimeout(resolve, ADMISSION_WINDOW_MS + 20))
    await window.admit('b')
    expect(admissions).toEqual([['a'], ['b']])
  })

  it('close() refuses the joiners waiting in the window and later ones; nobody is admitted after it', async () => {
    const admissions: string[][] = []
    const window = createAdmissionWindow((peers) => { admissions.push([...peers]) })
    await window.admit('a')
    const waiting = window.admit('b')
    window.close()
    await expect(waiting).rejects.toThrow('the job stopped')
    await expect(window.admit('c')).rejects.toThrow('the job stopped')
    await new Promise((resolve) => setTimeout(resolve, ADMISSION_WINDOW_MS + 20))
    expect(admissions).toEqual([['a']])
  })
})
