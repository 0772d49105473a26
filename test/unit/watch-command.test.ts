import {expect} from 'chai'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {smartnat} from '../support/smartnat-cli.js'

// Each of these is refused before smartnat touches the host, so none needs root.
describe('smartnat watch: refused options', function () {
  this.timeout(30_000)

  const table: {desc: string; args: string[]; message: string}[] = [
    {
      desc: 'a kubeconfig that does not exist',
      args: ['--kubeconfig', '/nonexistent/kubeconfig'],
      message: 'kubeconfig /nonexistent/kubeconfig: no such file',
    },
    {
      desc: 'a resync that is not a duration',
      args: ['--from-file', 'examples', '--resync', '5x'],
      message: '--resync "5x" must be a positive duration such as 500ms, 30s, 5m, 1h or a number of seconds',
    },
    {
      desc: 'a zero minimum interval',
      args: ['--from-file', 'examples', '--min-sync-interval', '0s'],
      message: '--min-sync-interval "0s" must be a positive duration such as 500ms, 30s, 5m, 1h or a number of seconds',
    },
    {
      desc: 'a status timeout that is not a duration',
      args: ['--from-file', 'examples', '--status-timeout', 'soon'],
      message: '--status-timeout "soon" must be a positive duration such as 500ms, 30s, 5m, 1h or a number of seconds',
    },
    {
      desc: 'a metrics address without a port',
      args: ['--from-file', 'examples', '--metrics-addr', '127.0.0.1'],
      message: '--metrics-addr: listen address "127.0.0.1" must be HOST:PORT with a port 0..65535, e.g. 127.0.0.1:9469 or [::1]:9469',
    },
    {
      desc: 'a max removal that is a fraction, not a percentage',
      args: ['--from-file', 'examples', '--max-removal', '0.5'],
      message: '--max-removal "0.5" must be a percentage from 0% to 100%, such as 50%',
    },
    {
      desc: 'a removal delay of no resyncs',
      args: ['--from-file', 'examples', '--removal-delay', '0'],
      message: 'Expected an integer greater than or equal to 1 but received: 0',
    },
    {
      desc: 'an API timeout that is not a duration',
      args: ['--kubeconfig', '/nonexistent/kubeconfig', '--api-timeout', 'soon'],
      message: '--api-timeout "soon" must be a positive duration such as 500ms, 30s, 5m, 1h or a number of seconds',
    },
    {
      desc: 'a manifest path that does not exist',
      args: ['--from-file', '/nonexistent/smartnat'],
      message: '--from-file /nonexistent/smartnat: no such file or directory',
    },
  ]

  for (const {desc, args, message} of table) {
    it(desc, async () => {
      const result = await smartnat(['watch', ...args, '--config', '/dev/null'])
      expect(result.code, result.stdout).to.equal(2)
      expect(result.stderr.replace(/\s+/g, ' ')).to.include(message)
    })
  }

  describe('the Go controller’s SNCTRLR_* variables', function () {
    const refused: {desc: string; env: Record<string, string>; message: string}[] = [
      {desc: 'a boolean Go would not parse', env: {SNCTRLR_SETUP_SNAT: 'on'}, message: 'SNCTRLR_SETUP_SNAT="on": must be one of 1, t, T'},
      {desc: 'an empty interfaces pattern', env: {SNCTRLR_INTERFACES_PATTERN: ''}, message: 'SNCTRLR_INTERFACES_PATTERN is set but empty'},
      {desc: 'a monitor port that is not a number', env: {SNCTRLR_MONITOR_PORT: 'http'}, message: 'SNCTRLR_MONITOR_PORT="http": must be a whole number'},
    ]
    for (const {desc, env, message} of refused) {
      it(`refuses ${desc} with code 2`, async () => {
        const result = await smartnat(['watch', '--from-file', 'examples', '--config', '/dev/null'], {env})
        expect(result.code, result.stdout).to.equal(2)
        expect(result.stderr.replace(/\s+/g, ' ')).to.include(message)
      })
    }

    it('ranks the carried-over monitor address under the config file, and the config file under the flag', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'smartnat-legacy-'))
      try {
        await writeFile(join(dir, 'config.yaml'), 'metrics-addr: from-file\n')
        const env = {SNCTRLR_MONITOR_PORT: '9100'}
        const fromFile = await smartnat(['watch', '--from-file', 'examples', '--config', join(dir, 'config.yaml')], {env})
        expect(fromFile.code).to.equal(2)
        expect(fromFile.stderr).to.include('--metrics-addr: listen address "from-file"')
        const fromFlag = await smartnat(['watch', '--from-file', 'examples', '--config', join(dir, 'config.yaml'), '--metrics-addr', 'from-flag'], {env})
        expect(fromFlag.stderr).to.include('--metrics-addr: listen address "from-flag"')
      } finally {
        await rm(dir, {recursive: true, force: true})
      }
    })
  })

  it('accepts seconds, minutes and bare seconds as durations (then stops at the missing source)', async () => {
    const result = await smartnat(['watch', '--resync', '90', '--min-sync-interval', '250ms', '--config', '/dev/null', '--kubeconfig', '/nonexistent/kubeconfig'])
    expect(result.code).to.equal(2)
    expect(result.stderr).to.include('kubeconfig /nonexistent/kubeconfig: no such file')
  })
})
