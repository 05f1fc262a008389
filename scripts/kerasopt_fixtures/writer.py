"""The one fixture writer every engine uses (schemas/fixture.schema.json): a JSON manifest plus one
packed little-endian payload holding the `initial` records, then each step's records, in manifest order."""
import hashlib
import json
import os

import numpy as np

DTYPE_NAMES = {np.dtype('float16'): 'float16', np.dtype('float32'): 'float32', np.dtype('float64'): 'float64',
               np.dtype('int32'): 'int32', np.dtype('int64'): 'int64'}
PROVENANCE_KINDS = ('tensorflow', 'tf-golden', 'reference', 'torch', 'external')


def _record(key, array):
    a = np.asarray(array)
    if a.dtype not in DTYPE_NAMES:
        raise ValueError(f'record {key!r}: dtype {a.dtype} is not a fixture dtype')
    if a.dtype.kind == 'f' and np.isnan(a).any():
        raise ValueError(f'record {key!r} holds NaN; a fixture must hold comparable numbers')
    return {'key': key, 'dtype': DTYPE_NAMES[a.dtype], 'shape': list(a.shape)}, a.astype(a.dtype.newbyteorder('<')).tobytes()


def build(spec, initial, steps):
    """spec: the manifest fields other than records/payload; initial: [(key, array)]; steps: [[(key, array)]].

    Returns (manifest, payload bytes). Every step must have the same keys, dtypes and shapes as step 1.
    """
    if spec['provenance']['kind'] not in PROVENANCE_KINDS:
        raise ValueError(f"unknown provenance kind {spec['provenance']['kind']!r}")
    if spec['provenance']['kind'] == 'tf-golden' and not spec['provenance'].get('source', '').strip():
        raise ValueError('a tf-golden fixture must name its source')
    if not steps:
        raise ValueError(f"fixture {spec['name']!r} has no steps")
    chunks, initial_specs, step_specs = [], [], None
    for key, array in initial:
        r, b = _record(key, array)
        initial_specs.append(r)
        chunks.append(b)
    for s, records in enumerate(steps):
        specs = []
        for key, array in records:
            r, b = _record(key, array)
            specs.append(r)
            chunks.append(b)
        if step_specs is None:
            step_specs = specs
        elif specs != step_specs:
            raise ValueError(f"fixture {spec['name']!r}: step {s + 1} records differ from step 1's")
    payload = b''.join(chunks)
    manifest = {
        'format': 'kerasopt-fixture',
        'version': 1,
        'name': spec['name'],
        'description': spec.get('description', ''),
        'provenance': spec['provenance'],
        'flavour': spec['flavour'],
        'dtype': spec['dtype'],
        'config': spec['config'],
        'variables': spec['variables'],
        'steps': len(steps),
        'tolerance': spec['tolerance'],
        'payload': {'file': spec['name'] + '.bin', 'byteLength': len(payload), 'sha256': hashlib.sha256(payload).hexdigest()},
        'initial': initial_specs,
        'step': step_specs,
    }
    return manifest, payload


def _atomic_write(path, data):
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


def write(out_dir, spec, initial, steps):
    """Writes <name>.json and <name>.bin into out_dir (each replaced atomically); returns the manifest path."""
    manifest, payload = build(spec, initial, steps)
    os.makedirs(out_dir, exist_ok=True)
    _atomic_write(os.path.join(out_dir, manifest['payload']['file']), payload)
    text = json.dumps(manifest, indent=2, allow_nan=False) + '\n'
    path = os.path.join(out_dir, spec['name'] + '.json')
    _atomic_write(path, text.encode('utf-8'))
    return path
