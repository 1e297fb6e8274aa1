// A small real training job in plain Node (no packages): a one-hidden-layer MLP (tanh, 16 units)
// fitted by full-batch gradient descent to y = sin(x) + noise on 256 points generated from a fixed
// seed. Logs the loss per step, writes a checkpoint to $GPUMESH_CHECKPOINT_DIR every
// CHECKPOINT_EVERY steps (and on SIGTERM), resumes from the newest one, and writes the trained
// weights to $GPUMESH_OUTPUT_DIR/model.json. STEP_MS paces the steps so that a run spans a few
// billing periods; the arithmetic itself takes well under a millisecond a step.
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const env = (name, fallback) => {
  const value = process.env[name]
  if (value === undefined || value === '') {
    if (fallback === undefined) { console.error(`${name} is not set`); process.exit(2) }
    return fallback
  }
  return value
}
const ckptDir = env('GPUMESH_CHECKPOINT_DIR', 'checkpoints')
const outDir = env('GPUMESH_OUTPUT_DIR', 'output')
const steps = Number(env('TRAIN_STEPS', '40'))
const stepMs = Number(env('STEP_MS', '150'))
const every = Number(env('CHECKPOINT_EVERY', '10'))
const rate = Number(env('LEARNING_RATE', '0.1'))
mkdirSync(ckptDir, { recursive: true })
mkdirSync(outDir, { recursive: true })

// A small deterministic generator (mulberry32), so every run sees the same data.
function random (seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const rnd = random(42)
const N = 256
const H = 16
const xs = Array.from({ length: N }, (_, i) => -Math.PI + (2 * Math.PI * i) / (N - 1))
const ys = xs.map((x) => Math.sin(x) + (rnd() - 0.5) * 0.1)

let model = {
  w1: Array.from({ length: H }, () => (rnd() - 0.5) * 2),
  b1: Array.from({ length: H }, () => 0),
  w2: Array.from({ length: H }, () => (rnd() - 0.5) * 0.5),
  b2: 0
}
let step = 0

const files = readdirSync(ckptDir).filter((f) => /^ckpt-\d+\.json$/.test(f)).sort((a, b) => Number(a.slice(5, -5)) - Number(b.slice(5, -5)))
if (files.length > 0) {
  const saved = JSON.parse(readFileSync(join(ckptDir, files.at(-1)), 'utf8'))
  model = saved.model
  step = saved.step
  console.log(`resumed from checkpoint at step ${step}`)
}

function checkpoint () {
  const path = join(ckptDir, `ckpt-${step}.json`)
  writeFileSync(path + '.tmp', JSON.stringify({ step, model }))
  renameSync(path + '.tmp', path)
}

/** One full-batch gradient step; returns the mean squared error before the update. */
function train () {
  const g = { w1: new Array(H).fill(0), b1: new Array(H).fill(0), w2: new Array(H).fill(0), b2: 0 }
  let loss = 0
  for (let n = 0; n < N; n++) {
    const x = xs[n]
    const h = model.w1.map((w, j) => Math.tanh(w * x + model.b1[j]))
    const pred = h.reduce((s, hj, j) => s + hj * model.w2[j], model.b2)
    const err = pred - ys[n]
    loss += err * err
    const d = (2 * err) / N
    g.b2 += d
    for (let j = 0; j < H; j++) {
      g.w2[j] += d * h[j]
      const dh = d * model.w2[j] * (1 - h[j] * h[j])
      g.w1[j] += dh * x
      g.b1[j] += dh
    }
  }
  for (let j = 0; j < H; j++) {
    model.w1[j] -= rate * g.w1[j]
    model.b1[j] -= rate * g.b1[j]
    model.w2[j] -= rate * g.w2[j]
  }
  model.b2 -= rate * g.b2
  return loss / N
}

process.on('SIGTERM', () => { checkpoint(); console.log(`stopped at step ${step}; checkpoint written`); process.exit(0) })

console.log(`training a ${H}-unit MLP on ${N} points; GPUs ${process.env.CUDA_VISIBLE_DEVICES ?? process.env.ROCR_VISIBLE_DEVICES ?? 'none'} (this job computes on the CPU)`)
const timer = setInterval(() => {
  const loss = train()
  step++
  console.log(`step ${step}/${steps} loss ${loss.toFixed(5)}`)
  if (step % every === 0) checkpoint()
  if (step >= steps) {
    clearInterval(timer)
    checkpoint()
    writeFileSync(join(outDir, 'model.json'), JSON.stringify({ kind: 'mlp-tanh', hidden: H, steps: step, loss, model }, null, 2) + '\n')
    console.log(`done: final loss ${loss.toFixed(5)}; weights in ${join(outDir, 'model.json')}`)
  }
}, stepMs)
