import t from 'tap'
import { AdmissionController, Reservation, type Rejection } from '../../src/batching/http-thread/admission.js'

const reserved = (result: Reservation | Rejection): Reservation => {
  if (!result.ok) throw new Error(`rejected: ${result.reason}`)
  return result
}

t.test('reserve rejects past maxWaiting with queue_full and a retry suggestion', async (t) => {
  const admission = new AdmissionController({ maxWaiting: 2, maxWaitingTokens: 1000 })
  reserved(admission.reserve(10))
  reserved(admission.reserve(10))
  t.strictSame(admission.reserve(10), { ok: false, reason: 'queue_full', retryAfterSeconds: 1 })
  t.equal(admission.waiting, 2)
  t.equal(admission.waitingTokens, 20)
})

t.test(
  'reserve rejects past maxWaitingTokens with queue_tokens_full, but an empty queue admits any size',
  async (t) => {
    const admission = new AdmissionController({ maxWaiting: 10, maxWaitingTokens: 100, retryAfterSeconds: 3 })
    const big = reserved(admission.reserve(500))
    t.equal(admission.waitingTokens, 500)
    t.strictSame(admission.reserve(1), { ok: false, reason: 'queue_tokens_full', retryAfterSeconds: 3 })
    big.release()
    const a = reserved(admission.reserve(60))
    t.strictSame(admission.reserve(41), { ok: false, reason: 'queue_tokens_full', retryAfterSeconds: 3 })
    reserved(admission.reserve(40))
    t.equal(admission.waitingTokens, 100)
    t.equal(a.tokens, 60)
  },
)

t.test('release gives the place back once, however often it is called', async (t) => {
  const admission = new AdmissionController({ maxWaiting: 1, maxWaitingTokens: 100 })
  const first = reserved(admission.reserve(30))
  t.equal(admission.reserve(1).ok, false)
  t.equal(first.release(), true)
  t.equal(first.release(), false)
  t.equal(first.status, 'released')
  t.equal(admission.waiting, 0)
  t.equal(admission.waitingTokens, 0)
  const second = reserved(admission.reserve(30))
  t.equal(admission.waiting, 1)
  t.equal(second.status, 'reserved')
})

t.test('commit swaps the estimate for the actual size once, and a released reservation cannot commit', async (t) => {
  const admission = new AdmissionController({ maxWaiting: 4, maxWaitingTokens: 100 })
  const r = reserved(admission.reserve(50))
  t.equal(r.commit(20), true)
  t.equal(r.commit(90), false)
  t.equal(r.status, 'committed')
  t.equal(r.tokens, 20)
  t.equal(admission.waitingTokens, 20)
  t.equal(r.release(), true)
  t.equal(admission.waitingTokens, 0)
  const gone = reserved(admission.reserve(5))
  gone.release()
  t.equal(gone.commit(), false)
  t.equal(admission.waiting, 0)
})

t.test('after startDraining every reserve is rejected with draining, and places already held stay valid', async (t) => {
  const admission = new AdmissionController({ maxWaiting: 4, maxWaitingTokens: 100 })
  const held = reserved(admission.reserve(10))
  admission.startDraining()
  t.equal(admission.draining, true)
  t.strictSame(admission.reserve(1), { ok: false, reason: 'draining', retryAfterSeconds: 1 })
  t.equal(held.commit(), true)
  t.equal(held.release(), true)
  t.strictSame(admission.reserve(1), { ok: false, reason: 'draining', retryAfterSeconds: 1 })
})

t.test('rejections are counted by reason in a plain object the caller cannot change', async (t) => {
  const admission = new AdmissionController({ maxWaiting: 1, maxWaitingTokens: 10 })
  reserved(admission.reserve(10))
  admission.reserve(1)
  admission.reserve(1)
  admission.startDraining()
  admission.reserve(1)
  const counts = admission.rejections
  t.strictSame(counts, { queue_full: 2, queue_tokens_full: 0, draining: 1 })
  counts.queue_full = 99
  t.equal(admission.rejections.queue_full, 2)
})

t.test('bad options or sizes throw INVALID_CONFIG naming them', async (t) => {
  t.throws(() => new AdmissionController({ maxWaiting: 0, maxWaitingTokens: 10 }), {
    code: 'SCHEDULER_CONFIG_INVALID',
    message: /maxWaiting/,
  })
  t.throws(() => new AdmissionController({ maxWaiting: 1, maxWaitingTokens: 10, retryAfterSeconds: -1 }), {
    code: 'SCHEDULER_CONFIG_INVALID',
    message: /retryAfterSeconds/,
  })
  const admission = new AdmissionController({ maxWaiting: 1, maxWaitingTokens: 10 })
  t.throws(() => admission.reserve(-1), { code: 'SCHEDULER_CONFIG_INVALID', message: /estimatedTokens/ })
  t.equal(admission.waiting, 0)
})
