/** The CLI script's Kubernetes client (src/cli/kube-client.ts) has every value src/ imports from the client. */
import {readdirSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {expect} from 'chai'
import * as kubeClient from '../../src/cli/kube-client.js'

const SRC = fileURLToPath(new URL('../../src', import.meta.url))

/** The names src/ imports as values (not `type`) from @kubernetes/client-node. */
function importedValues(): Set<string> {
  const names = new Set<string>()
  for (const file of readdirSync(SRC, {recursive: true, encoding: 'utf8'}).filter((f) => f.endsWith('.ts'))) {
    if (file === join('cli', 'kube-client.ts')) continue
    const text = readFileSync(join(SRC, file), 'utf8')
    for (const [, list] of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*'@kubernetes\/client-node'/g)) {
      for (const part of list!.split(',').map((p) => p.trim()).filter(Boolean)) if (!part.startsWith('type ')) names.add(part.split(/\s+as\s+/)[0]!)
    }
    expect(text, file).not.to.match(/import\s+\*\s+as\s+\w+\s+from\s+'@kubernetes\/client-node'|import\s+\w+\s+from\s+'@kubernetes\/client-node'|import\(\s*'@kubernetes\/client-node'\s*\)/)
  }
  return names
}

describe('the Kubernetes client of the CLI script', () => {
  it('exports every value src/ imports from @kubernetes/client-node', () => {
    const names = importedValues()
    expect(names.size).to.be.greaterThan(5)
    expect([...names].filter((name) => !(name in kubeClient))).to.deep.equal([])
  })
})
