/**
 * `smartnat watch` follows the host's addresses (`ip monitor`): an address added to an external
 * interface is served within seconds, long before the periodic resync (10 minutes here), and one
 * removed stops being served as soon; the monitor process ends with the daemon.
 */
import {readFileSync} from 'node:fs'
import {expect} from 'chai'
import {ExecRunner} from '../../src/lib/host/runner.js'
import {createBackendLab, removeBackendLab} from '../support/backend-lab.js'
import {BACKENDS} from '../support/backends.js'
import {commandArgs, eventually} from '../support/e2e.js'
import {freePort, httpGet} from '../support/http.js'
import {LAB_PLAN, type Lab} from '../support/lab.js'
import {ManifestDir, serviceFromLab, type MappingFixture} from '../support/mappings.js'
import {killSmartnat, startSmartnat, type RunningCli} from '../support/smartnat-cli.js'

const root = new ExecRunner({timeoutSeconds: 30})
const VIP = '198.19.100.10'
const WEB_PODS = ['198.19.200.11', '198.19.200.12']
const CLIENT = LAB_PLAN.client1.addresses[0]
// In eth1's subnet, but not on the host when the daemon starts.
const LATE = '198.18.0.20'
const WEB: MappingFixture = {name: 'web', addresses: [LATE], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]}

for (const backend of BACKENDS) describe(`smartnat watch follows the host's addresses (root, ${backend.name})`, function () {
  this.timeout(120_000)
  let lab: Lab | undefined
  let dir: ManifestDir | undefined
  let daemon: RunningCli | undefined
  let port: number
  let logText = ''

  const reach = async () => {
    const [result] = await lab!.requests('tcp', 'client1', CLIENT, LATE, 8080, 1, {timeoutMs: 500})
    return result!.ok ? result!.fields.pod : result!.error
  }
  // The processes in the lab's host namespace only (ps lists every namespace's): other daemons may run on the machine.
  const monitors = async () => {
    const {stdout} = await root.run('ip', ['netns', 'pids', lab!.ns('host')], {okExitCodes: [1]})
    const commands = stdout.split('\n').filter(Boolean).map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')
      } catch {
        return ''
      }
    })
    return commands.filter((command) => command.includes('monitor address link'))
  }
  // The shell the daemon starts its tools through (src/lib/host/launcher.ts), with its command line as it reads it.
  const keptShells = async () => {
    const {stdout} = await root.run('ip', ['netns', 'pids', lab!.ns('host')], {okExitCodes: [1]})
    return stdout
      .split('\n')
      .filter(Boolean)
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === 'sh\0'
        } catch {
          return false
        }
      })
  }

  before(async function () {
    ;({lab, dir} = await createBackendLab(this, backend))
    await dir.write({services: [serviceFromLab('web', lab.services(), VIP)], mappings: [WEB]})
    port = await freePort()
    daemon = startSmartnat(commandArgs('watch', backend.name, lab, dir, '--metrics-addr', `127.0.0.1:${port}`, '--resync', '10m', '--log-level', 'debug'), {timeoutMs: 110_000})
    daemon.child.stdout!.on('data', (chunk: Buffer) => (logText += chunk.toString()))
  })

  after(async () => {
    await killSmartnat(daemon)
    await removeBackendLab(lab, dir)
  })

  it('starts without the address: the Mapping is valid but not served here', async () => {
    await eventually('/readyz 200', 20_000, async () => ((await httpGet(port, '/readyz')).status === 200 ? true : undefined)).catch((error: Error) => {
      throw new Error(`${error.message}\n${logText.split('\n').slice(-10).join('\n')}`)
    })
    expect(await reach()).to.not.be.oneOf(WEB_PODS)
    expect(await monitors(), 'the daemon follows the host with one monitor').to.have.length(1)
  })

  it('an address added to eth1 is served within seconds, without waiting for the resync', async () => {
    await lab!.exec('host', 'ip', ['addr', 'add', `${LATE}/24`, 'dev', 'eth1'])
    const pod = await eventually(`traffic to ${LATE}`, 10_000, async () => {
      const answer = await reach()
      return WEB_PODS.includes(answer ?? '') ? answer : undefined
    })
    expect(pod).to.be.oneOf(WEB_PODS)
  })

  it('the address removed: its rules go as quickly', async () => {
    await lab!.exec('host', 'ip', ['addr', 'del', `${LATE}/24`, 'dev', 'eth1'])
    // Watched in the kernel itself: the log line of the pass that served the address may come after traffic already flows, and pass for this one.
    const listing = () => (backend.name === 'nftables' ? lab!.exec('host', 'nft', ['list', 'ruleset']) : lab!.exec('host', 'iptables-save', ['-t', 'nat']))
    await eventually(`the rules of ${LATE} gone`, 10_000, async () => ((await listing()).stdout.includes(LATE) ? undefined : true)).catch((error: Error) => {
      throw new Error(`${error.message}\n${logText.split('\n').slice(-20).join('\n')}`)
    })
    expect((await listing()).stdout).to.not.include(LATE)
  })

  it('SIGTERM ends the monitor and the shell of its tools with the daemon', async () => {
    expect(await keptShells()).to.have.length(1)
    daemon!.child.kill('SIGTERM')
    const result = await daemon!.done
    expect(result.code, result.stderr).to.equal(0)
    expect(await monitors()).to.deep.equal([])
    await eventually('no shell left', 5000, async () => ((await keptShells()).length === 0 ? true : undefined))
  })

  it('SIGKILL (as the OOM killer ends it) ends the monitor and the shell too', async () => {
    daemon = startSmartnat(commandArgs('watch', backend.name, lab!, dir!, '--metrics-addr', `127.0.0.1:${port}`, '--resync', '10m'), {timeoutMs: 60_000})
    await eventually('the monitor of the new daemon', 20_000, async () => ((await monitors()).length === 1 ? true : undefined))
    await eventually('the shell of the new daemon', 20_000, async () => ((await keptShells()).length === 1 ? true : undefined))
    daemon.child.kill('SIGKILL')
    await daemon.done
    await eventually('no monitor left', 5000, async () => ((await monitors()).length === 0 ? true : undefined))
    await eventually('no shell left', 5000, async () => ((await keptShells()).length === 0 ? true : undefined))
  })
})
