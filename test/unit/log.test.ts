import {expect} from 'chai'
import {createLogger, errorText, type LoggerOptions} from '../../src/lib/observe/log.js'

const NOW = new Date('2026-03-01T12:00:00.000Z')

function capture(options: LoggerOptions = {}) {
  const lines: string[] = []
  const logger = createLogger({now: () => NOW, write: (line) => lines.push(line), ...options})
  return {logger, lines}
}

describe('logger', () => {
  it('writes one JSON object per line with time, level, msg first, then the fields', () => {
    const {logger, lines} = capture({format: 'json'})
    logger.info('sync applied changes', {seconds: 0.25, changed: true, written: {rules: 3}})
    expect(lines).to.have.length(1)
    expect(lines[0]).to.equal('{"time":"2026-03-01T12:00:00.000Z","level":"info","msg":"sync applied changes","seconds":0.25,"changed":true,"written":{"rules":3}}')
  })

  it('drops lines below the level and keeps the rest', () => {
    const {logger, lines} = capture({level: 'warn'})
    logger.debug('d')
    logger.info('i')
    logger.warn('w')
    logger.error('e')
    expect(lines.map((l) => (JSON.parse(l) as {level: string}).level)).to.deep.equal(['warn', 'error'])
  })

  it('defaults to info', () => {
    const {logger, lines} = capture()
    logger.debug('hidden')
    logger.info('shown')
    expect(lines.map((l) => (JSON.parse(l) as {msg: string}).msg)).to.deep.equal(['shown'])
  })

  it('writes human lines: time, padded LEVEL, msg, key=value with quoting only where needed', () => {
    const {logger, lines} = capture({format: 'text'})
    logger.warn('cannot read manifests', {path: '/etc/smartnat/m.yaml', error: 'm.yaml:3: invalid YAML', empty: '', n: 3, ok: false, list: [1, 2]})
    expect(lines).to.deep.equal([
      '2026-03-01T12:00:00.000Z WARN  cannot read manifests path=/etc/smartnat/m.yaml error="m.yaml:3: invalid YAML" empty="" n=3 ok=false list=[1,2]',
    ])
  })

  it('with() adds fields to every line; call fields win; the line’s own keys cannot be overwritten', () => {
    const {logger, lines} = capture()
    const source = logger.with({component: 'source', path: '/a'})
    source.info('changed', {path: '/b', msg: 'sneaky', level: 'x'})
    expect(JSON.parse(lines[0]!)).to.deep.equal({
      time: NOW.toISOString(),
      level: 'info',
      msg: 'changed',
      component: 'source',
      path: '/b',
      'field.msg': 'sneaky',
      'field.level': 'x',
    })
  })

  it('renders errors as their message, dates as ISO text, and leaves undefined fields out', () => {
    const {logger, lines} = capture()
    const error = new Error('apply: iptables-restore exited with 1', {cause: new Error('exit 1')})
    logger.error('boom', {error, at: NOW, missing: undefined, big: 10n})
    expect(JSON.parse(lines[0]!)).to.deep.equal({
      time: NOW.toISOString(),
      level: 'error',
      msg: 'boom',
      error: 'apply: iptables-restore exited with 1',
      at: NOW.toISOString(),
      big: '10',
    })
    expect(errorText('plain')).to.equal('plain')
  })
})
