export { applyAttack, type AttackContext } from './apply-attack.js'
