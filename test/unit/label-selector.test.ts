import {expect} from 'chai'
import {parseLabelSelector, selectorMatches, type Labels} from '../../src/lib/mapping/label-selector.js'

describe('label selectors', function () {
  const matching: {desc: string; selector: unknown; labels: Labels; want: boolean}[] = [
    {desc: 'an empty selector matches anything', selector: {}, labels: {}, want: true},
    {desc: 'matchLabels: every label equal', selector: {matchLabels: {tier: 'edge', team: 'a'}}, labels: {tier: 'edge', team: 'a', x: 'y'}, want: true},
    {desc: 'matchLabels: one label differs', selector: {matchLabels: {tier: 'edge', team: 'a'}}, labels: {tier: 'edge', team: 'b'}, want: false},
    {desc: 'matchLabels: one label missing', selector: {matchLabels: {tier: 'edge'}}, labels: {}, want: false},
    {desc: 'In: the value listed', selector: {matchExpressions: [{key: 'env', operator: 'In', values: ['prod', 'staging']}]}, labels: {env: 'staging'}, want: true},
    {desc: 'In: a value not listed', selector: {matchExpressions: [{key: 'env', operator: 'In', values: ['prod']}]}, labels: {env: 'dev'}, want: false},
    {desc: 'In: the label missing', selector: {matchExpressions: [{key: 'env', operator: 'In', values: ['prod']}]}, labels: {}, want: false},
    {desc: 'NotIn: a value not listed', selector: {matchExpressions: [{key: 'env', operator: 'NotIn', values: ['prod']}]}, labels: {env: 'dev'}, want: true},
    {desc: 'NotIn: the label missing', selector: {matchExpressions: [{key: 'env', operator: 'NotIn', values: ['prod']}]}, labels: {}, want: true},
    {desc: 'NotIn: the value listed', selector: {matchExpressions: [{key: 'env', operator: 'NotIn', values: ['prod']}]}, labels: {env: 'prod'}, want: false},
    {desc: 'Exists: present with an empty value', selector: {matchExpressions: [{key: 'edge', operator: 'Exists'}]}, labels: {edge: ''}, want: true},
    {desc: 'Exists: missing', selector: {matchExpressions: [{key: 'edge', operator: 'Exists'}]}, labels: {other: 'x'}, want: false},
    {desc: 'DoesNotExist: missing', selector: {matchExpressions: [{key: 'edge', operator: 'DoesNotExist', values: []}]}, labels: {}, want: true},
    {desc: 'DoesNotExist: present', selector: {matchExpressions: [{key: 'edge', operator: 'DoesNotExist'}]}, labels: {edge: 'no'}, want: false},
    {
      desc: 'matchLabels and matchExpressions together: all must hold',
      selector: {matchLabels: {tier: 'edge'}, matchExpressions: [{key: 'env', operator: 'NotIn', values: ['dev']}]},
      labels: {tier: 'edge', env: 'dev'},
      want: false,
    },
    {desc: 'a prefixed key', selector: {matchLabels: {'kubernetes.io/metadata.name': 'shop'}}, labels: {'kubernetes.io/metadata.name': 'shop'}, want: true},
  ]
  for (const {desc, selector, labels, want} of matching) {
    it(desc, function () {
      const parsed = parseLabelSelector(selector, 'sel')
      if (typeof parsed === 'string') expect.fail(parsed)
      expect(selectorMatches(parsed, labels)).to.equal(want)
    })
  }

  const invalid: {desc: string; selector: unknown; error: string}[] = [
    {desc: 'not an object', selector: ['a'], error: 'sel must be an object with matchLabels and/or matchExpressions'},
    {desc: 'an unknown field', selector: {matchLabel: {a: 'b'}}, error: 'sel.matchLabel is not a field of a label selector (matchLabels, matchExpressions)'},
    {desc: 'matchLabels as a list', selector: {matchLabels: ['a']}, error: 'sel.matchLabels must map label keys to values'},
    {desc: 'a bad key', selector: {matchLabels: {'-a': 'b'}}, error: 'sel.matchLabels key "-a" is not a label key'},
    {desc: 'a value that is not text', selector: {matchLabels: {a: 1}}, error: 'sel.matchLabels["a"] 1 is not a label value'},
    {desc: 'matchExpressions as an object', selector: {matchExpressions: {key: 'a'}}, error: 'sel.matchExpressions must be a list of {key, operator, values}'},
    {desc: 'an unknown operator', selector: {matchExpressions: [{key: 'a', operator: 'Equals', values: ['b']}]}, error: 'sel.matchExpressions[0].operator "Equals" must be In, NotIn, Exists or DoesNotExist'},
    {desc: 'In without values', selector: {matchExpressions: [{key: 'a', operator: 'In'}]}, error: 'sel.matchExpressions[0].values must list at least one value for operator In'},
    {desc: 'Exists with values', selector: {matchExpressions: [{key: 'a', operator: 'Exists', values: ['b']}]}, error: 'sel.matchExpressions[0].values must be empty for operator Exists'},
    {desc: 'a bad value in values', selector: {matchExpressions: [{key: 'a', operator: 'NotIn', values: ['b c']}]}, error: 'sel.matchExpressions[0].values[0] "b c" is not a label value'},
    {desc: 'no key', selector: {matchExpressions: [{operator: 'Exists'}]}, error: 'sel.matchExpressions[0].key undefined is not a label key'},
  ]
  for (const {desc, selector, error} of invalid) {
    it(`refuses ${desc}`, function () {
      expect(parseLabelSelector(selector, 'sel')).to.equal(error)
    })
  }
})
