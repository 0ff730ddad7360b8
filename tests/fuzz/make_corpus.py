#!/usr/bin/env python3
"""Writes the seed corpus of the parser fuzz targets (tests/fuzz/corpus/<target>/): valid inputs made
by a real `strata` binary plus hand-made malformed variants (bit flips, truncations, huge sizes,
overlapping offsets, deep nesting). Usage: make_corpus.py <strata binary> (run from anywhere)."""
import json, os, random, shutil, struct, subprocess, sys, tempfile, glob

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
C = os.path.join(SRC, 'tests', 'fuzz', 'corpus')
strata = os.path.abspath(sys.argv[1])
work = tempfile.mkdtemp(prefix='strata-corpus.')
os.chdir(work)
with open(os.path.join(SRC, 'datasets', 'kjv.txt') if os.path.exists(os.path.join(SRC, 'datasets', 'kjv.txt')) else os.path.join(SRC, 'README.md'), 'rb') as f:
    open('c.txt', 'wb').write(f.read(20000))
open('r.yaml', 'w').write('''run: {name: seed, dir: run, seed: 1}
model: {n_layer: 1, d_model: 8, n_head: 1, vocab_size: 264, max_seq_len: 16}
data: {path: ds}
train: {steps: 1, micro_batch: 2, seq_len: 16, log_every: 1, eval_every: 0, threads: 1}
checkpoint: {every: 1}
''')
for cmd in ([strata, 'prep', '-i', 'c.txt', '-o', os.path.join(work, 'ds'), '--val-every', '3'], [strata, 'train', 'r.yaml'],
            [strata, 'export', '--run', 'run', '-o', 'hf']):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

random.seed(7)
shutil.rmtree(C, ignore_errors=True)
def out(t, name, data):
    os.makedirs(os.path.join(C, t), exist_ok=True)
    open(os.path.join(C, t, name), 'wb').write(data.encode() if isinstance(data, str) else data)
def flips(t, base, data, n=4):
    for i in range(n):
        d = bytearray(data)
        for _ in range(3):
            j = random.randrange(len(d)); d[j] ^= 1 << random.randrange(8)
        out(t, f'{base}-flip{i}', bytes(d))
    out(t, f'{base}-trunc-half', data[:len(data) // 2])
    out(t, f'{base}-trunc-1', data[:-1])
    out(t, 'empty', b'')

for p in sorted(glob.glob(os.path.join(SRC, 'recipes', '*.yaml')))[:6]:
    out('recipe', os.path.basename(p), open(p, 'rb').read())
out('recipe', 'bad-types', 'model: {n_layer: "two", d_model: [1,2]}\ntrain: {steps: 1e400}\n')
out('recipe', 'unknown-key', 'modle: {n_layer: 2}\n')
out('recipe', 'deep-nesting', '[' * 3000 + ']' * 3000)
out('recipe', 'deep-maps', 'a: ' * 2000 + '1')
out('recipe', 'anchors', 'a: &x [1,2]\nb: *x\nmodel: *x\n')
out('recipe', 'include-self', 'include: fuzz.yaml\n')
out('recipe', 'binary', bytes(range(256)))
flips('recipe', 'kjv', open(os.path.join(SRC, 'recipes', 'kjv-gpt-tiny.yaml'), 'rb').read())

m = open('ds/manifest.yaml', 'rb').read()
out('dataset_manifest', 'valid', m)
flips('dataset_manifest', 'valid', m)
s = m.decode()
out('dataset_manifest', 'huge-counts', s.replace('tokens: ', 'tokens: 99999999999999999999'))
out('dataset_manifest', 'negative-vocab', s.replace('vocab_size: ', 'vocab_size: -'))
out('dataset_manifest', 'path-escape', s.replace('train_00000.bin', '../../../etc/passwd'))

sh = open('ds/val_00000.bin', 'rb').read()
out('shard', 'valid', sh)
flips('shard', 'valid', sh)
for name, lo, hi, val in [('huge-n-tokens', 16, 24, struct.pack('<Q', 2**62)), ('huge-n-docs', 24, 32, struct.pack('<Q', 2**63 - 1)),
                          ('dtype-3', 12, 16, struct.pack('<I', 3))]:
    h = bytearray(sh[:64]); h[lo:hi] = val
    out('shard', name, bytes(h) + sh[64:])
out('shard', 'header-only', sh[:64])

man = open('run/checkpoints/step_1/manifest.pb', 'rb').read()
ten = open('run/checkpoints/step_1/tensors.bin', 'rb').read()
ck = struct.pack('<I', len(man)) + man + ten
out('checkpoint_manifest', 'valid', ck)
flips('checkpoint_manifest', 'valid', ck, 6)
out('checkpoint_manifest', 'short-tensors', struct.pack('<I', len(man)) + man + ten[:len(ten) // 3])
out('checkpoint_manifest', 'manifest-only', struct.pack('<I', len(man)) + man)

st = open('hf/model.safetensors', 'rb').read()
out('safetensors', 'valid', st)
n = struct.unpack('<Q', st[:8])[0]
hdr = json.loads(st[8:8 + n])
flips('safetensors', 'valid', st)
out('safetensors', 'huge-header-len', struct.pack('<Q', 2**63) + st[8:])
def with_header(h):
    b = json.dumps(h).encode(); b += b' ' * ((8 - len(b) % 8) % 8)
    return struct.pack('<Q', len(b)) + b + st[8 + n:]
keys = [x for x in hdr if x != '__metadata__']
def variant(name, edit):
    h = json.loads(json.dumps(hdr)); edit(h); out('safetensors', name, with_header(h))
variant('offset-past-end', lambda h: h[keys[0]].__setitem__('data_offsets', [0, 2**62]))
variant('shape-overflow', lambda h: h[keys[0]].__setitem__('shape', [2**31, 2**31, 2**31]))
variant('bad-dtype', lambda h: h[keys[0]].__setitem__('dtype', 'F13'))
variant('overlap', lambda h: h[keys[1]].__setitem__('data_offsets', h[keys[0]]['data_offsets']))
out('safetensors', 'not-json', struct.pack('<Q', 16) + b'{"a": [1, 2, 3' + b'\0' * 100)
shutil.rmtree(work)
print('corpus written to', C)
