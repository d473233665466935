/**
 * A duration given in seconds, for tables: whole seconds from 100 s, tenths from 10 s, two
 * significant digits from 0.1 s ('0.13 s', '1.2 s'; tenths read 0.125 s as '0.1 s', ten of which
 * were printed beside '1.2 s'), below that milliseconds to two significant digits ('9.3 ms'). The
 * bounds sit where rounding would carry into the next unit, so 0.09996 s reads '0.1 s', never
 * '1.0e+2 ms'.
 */
export function formatSeconds(seconds: number): string {
  if (seconds >= 99.95) return `${seconds.toFixed(0)} s`
  if (seconds >= 9.995) return `${seconds.toFixed(1)} s`
  if (seconds >= 0.0995) return `${Number(seconds.toPrecision(2))} s`
  return `${Number((seconds * 1000).toPrecision(2))} ms`
}
