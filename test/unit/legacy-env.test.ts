import {expect} from 'chai'

import {hostFlags, planFlags} from '../../src/cli/flags.js'
import {goBoolean, LEGACY_OPTION_FLAGS, readLegacySettings, unusedWarning} from '../../src/cli/legacy-env.js'

/** Every flag a SNCTRLR_* variable can set, as `watch` has them all. */
const WATCH_FLAGS = new Set(['interfaces', 'command-timeout', 'default-gw-interface', 'gw-offset', 'masquerade', 'snat', 'max-ports-per-mapping', 'log-level', 'resync', 'metrics-addr'])

describe('SNCTRLR_* environment variables', function () {
  describe('booleans read as Go strconv.ParseBool reads them', function () {
    const accepted: [string, boolean][] = [
      ['1', true], ['t', true], ['T', true], ['TRUE', true], ['true', true], ['True', true],
      ['0', false], ['f', false], ['F', false], ['FALSE', false], ['false', false], ['False', false],
    ]
    for (const [text, value] of accepted) {
      it(`reads ${JSON.stringify(text)} as ${value}`, function () {
        expect(goBoolean('SNCTRLR_SETUP_SNAT', text)).to.equal(value)
        expect(readLegacySettings({SNCTRLR_SETUP_SNAT: text}, WATCH_FLAGS).environment).to.deep.equal({snat: value})
      })
    }

    for (const text of ['on', 'yes', 'y', 'tRUE', 'True ', '', '2']) {
      it(`refuses ${JSON.stringify(text)}`, function () {
        expect(() => readLegacySettings({SNCTRLR_SETUP_MASQUERADE: text}, WATCH_FLAGS)).to.throw(/^SNCTRLR_SETUP_MASQUERADE=/)
      })
    }

    it('says which values it takes', function () {
      expect(() => goBoolean('SNCTRLR_SETUP_SNAT', 'on')).to.throw('SNCTRLR_SETUP_SNAT="on": must be one of 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False')
    })
  })

  describe('values refused, each with its message', function () {
    const table: {desc: string; env: Record<string, string>; message: string}[] = [
      {
        desc: 'an empty interfaces pattern',
        env: {SNCTRLR_INTERFACES_PATTERN: ''},
        message: 'SNCTRLR_INTERFACES_PATTERN is set but empty: give a regular expression, or unset it for the default ^eth[1-9][0-9]*$',
      },
      {desc: 'a timeout that is not a number', env: {SNCTRLR_IPTABLES_TIMEOUT_SEC: '10s'}, message: 'SNCTRLR_IPTABLES_TIMEOUT_SEC="10s": must be a whole number'},
      {desc: 'a port limit of 0', env: {SNCTRLR_MAX_PORTS_PER_MAPPING: '0'}, message: 'SNCTRLR_MAX_PORTS_PER_MAPPING="0": must be at least 1'},
      {desc: 'an autorefresh period of 0', env: {SNCTRLR_AUTOREFRESH_PERIOD_SEC: '0'}, message: 'SNCTRLR_AUTOREFRESH_PERIOD_SEC="0": must be at least 1'},
      {desc: 'a debug switch of "on"', env: {SNCTRLR_DEBUG_ENABLED: 'on'}, message: 'SNCTRLR_DEBUG_ENABLED="on": must be one of'},
      {desc: 'a monitor IP that is a name', env: {SNCTRLR_MONITOR_IP: 'localhost'}, message: 'SNCTRLR_MONITOR_IP="localhost": must be an IP address, or empty for every address'},
      {desc: 'a monitor port past 65535', env: {SNCTRLR_MONITOR_PORT: '65536'}, message: 'SNCTRLR_MONITOR_PORT="65536": must be at most 65535'},
      {desc: 'an empty monitor port', env: {SNCTRLR_MONITOR_PORT: ''}, message: 'SNCTRLR_MONITOR_PORT="": must be a whole number'},
    ]
    for (const {desc, env, message} of table) {
      it(desc, function () {
        expect(() => readLegacySettings(env, WATCH_FLAGS)).to.throw(message)
      })
    }
  })

  describe('values read', function () {
    const table: {desc: string; env: Record<string, string>; environment?: Record<string, unknown>; carriedOver?: Record<string, unknown>}[] = [
      {
        desc: 'the options smartnat shares with the Go controller, as the environment',
        env: {
          SNCTRLR_INTERFACES_PATTERN: '^bond[0-9]$', SNCTRLR_IPTABLES_TIMEOUT_SEC: '20', SNCTRLR_DEFAULT_GW_INTERFACE: 'eth1',
          SNCTRLR_GW_ADDRESS_OFFSET: '-1', SNCTRLR_SETUP_MASQUERADE: 'F', SNCTRLR_SETUP_SNAT: 'T', SNCTRLR_MAX_PORTS_PER_MAPPING: '7',
        },
        environment: {interfaces: '^bond[0-9]$', 'command-timeout': 20, 'default-gw-interface': 'eth1', 'gw-offset': -1, masquerade: false, snat: true, 'max-ports-per-mapping': 7},
      },
      {desc: 'an empty default gateway interface as none', env: {SNCTRLR_DEFAULT_GW_INTERFACE: ''}},
      {desc: 'debug on as --log-level debug', env: {SNCTRLR_DEBUG_ENABLED: 'true'}, carriedOver: {'log-level': 'debug'}},
      {desc: 'debug off as the default log level', env: {SNCTRLR_DEBUG_ENABLED: '0'}},
      {desc: 'the autorefresh period as --resync in seconds', env: {SNCTRLR_AUTOREFRESH_PERIOD_SEC: '120'}, carriedOver: {resync: '120s'}},
      {desc: 'a monitor port alone on the Go controller’s loopback address', env: {SNCTRLR_MONITOR_PORT: '9100'}, carriedOver: {'metrics-addr': '127.0.0.1:9100'}},
      {desc: 'a monitor IP alone on the Go controller’s port 8080', env: {SNCTRLR_MONITOR_IP: '198.18.0.1'}, carriedOver: {'metrics-addr': '198.18.0.1:8080'}},
      {desc: 'an empty monitor IP as every address', env: {SNCTRLR_MONITOR_IP: '', SNCTRLR_MONITOR_PORT: '8081'}, carriedOver: {'metrics-addr': '0.0.0.0:8081'}},
      {desc: 'an IPv6 monitor IP in brackets', env: {SNCTRLR_MONITOR_IP: '::1'}, carriedOver: {'metrics-addr': '[::1]:8080'}},
    ]
    for (const {desc, env, environment = {}, carriedOver = {}} of table) {
      it(desc, function () {
        expect(readLegacySettings(env, WATCH_FLAGS)).to.deep.equal({environment, carriedOver, unused: []})
      })
    }
  })

  it('leaves unread what the command has no flag for', function () {
    const env = {SNCTRLR_MONITOR_PORT: 'x', SNCTRLR_DEBUG_ENABLED: 'on', SNCTRLR_AUTOREFRESH_PERIOD_SEC: '', SNCTRLR_SETUP_SNAT: 'on', SNCTRLR_IPTABLES_TIMEOUT_SEC: '5'}
    expect(readLegacySettings(env, new Set(['command-timeout']))).to.deep.equal({environment: {'command-timeout': 5}, carriedOver: {}, unused: []})
  })

  it('names the SNCTRLR_* variables it does not use in one warning, and nothing else', function () {
    const env = {SNCTRLR_MAX_FINALIZE_WAIT_MINUTES: '60', SNCTRLR_INTERFACE_PATTERN: 'eth', SNCTRLR_SETUP_SNAT: 'false', PATH: '/bin', SMARTNAT_BACKEND: 'nftables'}
    const {unused} = readLegacySettings(env, WATCH_FLAGS)
    expect(unused).to.deep.equal(['SNCTRLR_INTERFACE_PATTERN', 'SNCTRLR_MAX_FINALIZE_WAIT_MINUTES'])
    expect(unusedWarning(unused)).to.equal(
      'ignored: SNCTRLR_INTERFACE_PATTERN, SNCTRLR_MAX_FINALIZE_WAIT_MINUTES are set but smartnat does not use them (see "Settings carried over from the Go controller" in docs/operations.md)',
    )
    expect(unusedWarning([])).to.equal(undefined)
  })

  it('knows every SNCTRLR_* variable the flags declare, for the flag that declares it', function () {
    const declared = Object.entries({...hostFlags, ...planFlags}).flatMap(([name, flag]) => {
      const env = (flag as {env?: string}).env
      return env?.startsWith('SNCTRLR_') ? [[env, name]] : []
    })
    expect(Object.fromEntries(declared)).to.deep.equal(LEGACY_OPTION_FLAGS)
  })
})
