/**
 * The chaos suite's traffic monitor, in the namespace lab without smartnat: it probes a pod's TCP and
 * UDP echo every 50 ms, and a pod that drops everything for a moment shows up as lost probes, each
 * stamped inside that moment, and as nothing else.
 */
import {expect} from 'chai'
import {labForSuite} from '../support/lab.js'
import {startTrafficMonitor} from '../support/traffic-monitor.js'

const POD = '198.19.200.11'
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('traffic monitor (namespace lab, root)', function () {
  this.timeout(60_000)
  const lab = labForSuite()

  it('counts every probe and stamps each lost one inside the moment the pod dropped everything', async () => {
    const started = Date.now()
    const monitor = await startTrafficMonitor(lab(), 'host', [{protocol: 'tcp', ip: POD, port: 8080}, {protocol: 'udp', ip: POD, port: 5353}], {timeoutMs: 500, maxSeconds: 30})
    await sleep(1000)
    const dropped = Date.now()
    await lab().exec('node', 'iptables', ['-I', 'INPUT', '-d', `${POD}/32`, '-j', 'DROP'])
    await sleep(1000)
    await lab().exec('node', 'iptables', ['-D', 'INPUT', '-d', `${POD}/32`, '-j', 'DROP'])
    const restored = Date.now()
    await sleep(1000)
    const report = await monitor.stop()
    const intervals = (Date.now() - started) / 50

    // One probe per target every 50 ms; a loaded machine may fire the timer late, never early.
    for (const counts of Object.values(report.targets)) expect(counts.attempts, 'a probe every 50 ms').to.be.within(intervals / 2, intervals + 1)
    expect(Object.keys(report.targets)).to.deep.equal([`tcp:${POD}:8080`, `udp:${POD}:5353`])
    const lost = (target: string) => report.failures.filter((f) => f.target === target).length
    expect(lost(`tcp:${POD}:8080`), 'tcp probes lost while dropping').to.be.at.least(10)
    expect(lost(`udp:${POD}:5353`), 'udp probes lost while dropping').to.be.at.least(10)
    expect(report.targets[`tcp:${POD}:8080`]!.failures).to.equal(lost(`tcp:${POD}:8080`))
    for (const failure of report.failures) {
      expect(failure.error).to.equal('timeout')
      // A probe sent just before the drop can still lose its answer to it.
      expect(failure.at).to.be.within(dropped - 100, restored)
    }
  })
})
