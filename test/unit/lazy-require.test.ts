/** The bundle's rewrite of oclif's modules (scripts/lazy-require.ts): a required module is evaluated when first used, and used as before. */
import {expect} from 'chai'

import {lazyRequires} from '../../scripts/lazy-require.js'

// TypeScript's CommonJS output, as oclif ships it: its three forms of top-level require, and uses of each.
const MODULE = `"use strict";
const help_1 = require("./help");
const Errors = __importStar(require("./errors"));
const wordwrap = require('wordwrap');
class Command extends help_1.Base {}
function fail(text) { return (0, Errors.error)(text + ' (see help_1 and "Errors")'); }
function wrap(text) { return wordwrap(text); }
module.exports = {Command, fail, wrap};
`

/** Evaluates the rewritten module with a require that records what it evaluates. */
function load(source: string) {
  const evaluated: string[] = []
  const modules: Record<string, unknown> = {
    './help': {Base: class {}},
    './errors': {error: (text: string) => `error: ${text}`},
    wordwrap: (text: string) => `wrapped ${text}`,
  }
  const require = (id: string) => {
    evaluated.push(id)
    return modules[id]
  }
  const module = {exports: {} as Record<string, (text: string) => string>}
  new Function('require', 'module', '__importStar', source)(require, module, (m: unknown) => m)
  return {evaluated, exports: module.exports}
}

describe('oclif’s requires, made lazy in the bundle', () => {
  it('evaluates each required module at its first use, once, and behaves as before', () => {
    const {source, names} = lazyRequires(MODULE)
    expect(names).to.deep.equal(['help_1', 'Errors', 'wordwrap'])
    const {evaluated, exports} = load(source)
    // A class's base is used when the class is defined, at load.
    expect(evaluated).to.deep.equal(['./help'])
    expect(exports.fail!('x')).to.equal('error: x (see help_1 and "Errors")')
    expect(exports.fail!('y')).to.equal('error: y (see help_1 and "Errors")')
    expect(evaluated).to.deep.equal(['./help', './errors'])
    expect(exports.wrap!('z')).to.equal('wrapped z')
    expect(evaluated).to.deep.equal(['./help', './errors', 'wordwrap'])
    expect(load(MODULE).evaluated).to.deep.equal(['./help', './errors', 'wordwrap'])
  })
})
