/**
 * What the CLI says about an exported model's inputs (`p2pmld export`, `train --out`): the
 * normalisation the file records, or why it records none.
 */
import { describeInputNormalization, INPUT_NORMALIZATION_KEY, type InputNormalization } from '../../ml/data/normalize.js'

export function describeExportedInputs(written: { readonly normalization?: InputNormalization, readonly normalizationUnknown?: string }): string {
  if (written.normalization !== undefined) return `${describeInputNormalization(written.normalization)} (in the file's metadata_props as ${INPUT_NORMALIZATION_KEY})`
  return `the file does not say how its inputs are normalised: ${written.normalizationUnknown ?? 'unknown'}`
}
