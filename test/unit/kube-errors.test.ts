import {ApiException} from '@kubernetes/client-node'
import {expect} from 'chai'

import {describeApiError, httpStatusOf, isGone} from '../../src/lib/source/kube/errors.js'

describe('API errors, told without importing the client', () => {
  it("reads the code and the server's message of the client's ApiException", () => {
    const error = new ApiException(410, 'Gone', JSON.stringify({kind: 'Status', message: 'too old resource version: 1 (5)'}), {})
    expect(httpStatusOf(error)).to.equal(410)
    expect(isGone(error)).to.equal(true)
    expect(describeApiError(error)).to.equal('HTTP 410: too old resource version: 1 (5)')
  })

  it('reads a decoded body, and says the code alone when the body has no message', () => {
    expect(describeApiError(new ApiException(409, 'Conflict', {message: 'the object has been modified'}, {}))).to.equal('HTTP 409: the object has been modified')
    expect(describeApiError(new ApiException(500, 'Internal', 'not json', {}))).to.equal('HTTP 500')
  })

  it('takes a system error for what it is, not for an API answer', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 198.18.0.1:6443'), {code: 'ECONNREFUSED'})
    expect(httpStatusOf(refused)).to.equal(undefined)
    expect(describeApiError(refused)).to.equal('connect ECONNREFUSED 198.18.0.1:6443')
    expect(httpStatusOf({statusCode: 403})).to.equal(403)
  })
})
