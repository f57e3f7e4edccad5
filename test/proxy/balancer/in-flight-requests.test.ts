/** An instance's in-flight list: swap-remove keeps every request's index right, whatever the order. */
import t from 'tap'
import { InFlightRequests, type InFlightRequest } from '../../../proxy/balancer/instance.js'

function request (name: string): InFlightRequest & { readonly name: string } {
  return { name, inFlightIndex: -1, instanceGone () {} }
}

t.test('add and delete in any order; a request not in the list is refused', async (t) => {
  const list = new InFlightRequests()
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(request) as [ReturnType<typeof request>, ReturnType<typeof request>, ReturnType<typeof request>, ReturnType<typeof request>]
  for (const r of [a, b, c, d]) list.add(r)
  t.equal(list.size, 4)
  t.ok(list.delete(b), 'from the middle')
  t.strictSame(list.snapshot().map((r) => (r as typeof a).name), ['a', 'd', 'c'], 'the last one took its place')
  t.equal(d.inFlightIndex, 1, 'and knows it')
  t.equal(b.inFlightIndex, -1)
  t.notOk(list.delete(b), 'twice: refused')
  t.ok(list.delete(c), 'the last one')
  t.ok(list.delete(a), 'the first one')
  t.strictSame(list.snapshot().map((r) => (r as typeof a).name), ['d'])
  const other = new InFlightRequests()
  other.add(request('x'))
  t.notOk(other.delete(d), 'a request of another list, at an index this list has, is refused')
  t.ok(list.delete(d))
  t.equal(list.size, 0)
  const snapshot = list.snapshot()
  list.add(a)
  t.equal(snapshot.length, 0, 'a snapshot does not change with the list')
})
