import t from 'tap'
import { partialImageSteps } from '../../src/batching/engine-thread/image-jobs.js'

t.test('partial images are spread evenly over the denoise loop and never fall on its last step', async (t) => {
  t.same(partialImageSteps(8, 0), [])
  t.same(partialImageSteps(8, 1), [4])
  t.same(partialImageSteps(8, 3), [2, 4, 6])
  t.same(partialImageSteps(50, 2), [17, 33])
  t.same(partialImageSteps(2, 3), [1], 'two steps leave room for one')
  t.same(partialImageSteps(1, 2), [], 'one step leaves none')
})
