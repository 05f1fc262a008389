"""kerasopt's corpus-suite helper: what h5py, numpy and zipfile (not kerasopt) see in one corpus item.

Reads one JSON job on stdin and prints one JSON answer, so the suite spawns one process per question
about an item, never one per weight:

  {"facts": PATH}
      PATH is an HDF5 file (.h5, .hdf5, .weights.h5) or a .keras archive (its model.weights.h5 is read
      from memory with zipfile; nothing is extracted to disk). Answer:
        zip:      {entry name: sha256 of its bytes} for an archive, else null
        groups:   every group path of the HDF5 file
        datasets: {path: {dtype (numpy, e.g. '<f4'), shape, hex (little-endian bytes; optimizer
                  datasets only: optimizer_weights/..., optimizer/...)}}
        attrs:    {object path ('/' for the root): {name: {type, shape, value}}} (keras_files.attr_json)
  {"schedule": {flavour, dtype, config, iterations, hex, steps}}
      kerasopt's numpy reference (scripts/kerasopt_fixtures/reference.py, written from the Keras
      sources, independent of kerasopt's TypeScript) advances a saved momentum-schedule scalar
      (momentum_cache / m_schedule / u_product, given as the hex of its little-endian bytes) from
      `iterations` by `steps` steps. Answer: {hex} of the result.
"""
import hashlib
import io
import json
import os
import sys
import zipfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', '..', 'scripts'))
from keras_files import attr_json  # noqa: E402

OPTIMIZER_GROUPS = ('optimizer_weights/', 'optimizer/')


def le_hex(arr):
    arr = np.ascontiguousarray(arr)
    return arr.astype(arr.dtype.newbyteorder('<')).tobytes().hex()


def facts(path):
    out = {'zip': None, 'groups': [], 'datasets': {}, 'attrs': {}}
    source = path
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            out['zip'] = {i.filename: hashlib.sha256(zf.read(i)).hexdigest() for i in zf.infolist()}
            source = io.BytesIO(zf.read('model.weights.h5'))
    with h5py.File(source, 'r') as f:
        out['attrs']['/'] = attr_json(f)

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                d = {'dtype': obj.dtype.newbyteorder('<').str if obj.dtype.kind in 'fiu' else obj.dtype.str,
                     'shape': list(obj.shape)}
                if name.startswith(OPTIMIZER_GROUPS):
                    d['hex'] = le_hex(obj[()])
                out['datasets'][name] = d
            else:
                out['groups'].append(name)
            if len(obj.attrs):
                out['attrs'][name] = attr_json(obj)
        f.visititems(visit)
    return out


def schedule(job):
    from kerasopt_fixtures.reference import ReferenceNadam
    dtype = np.dtype(job['dtype'])
    ref = ReferenceNadam(job['flavour'], job['dtype'], job['config'], {})
    ref.schedule = np.frombuffer(bytes.fromhex(job['hex']), dtype=dtype.newbyteorder('<'))[0].astype(dtype)
    ref.iterations = int(job['iterations'])
    for _ in range(int(job['steps'])):
        ref.step({})
    return {'hex': le_hex(np.asarray(ref.schedule, dtype=dtype))}


if __name__ == '__main__':
    job = json.load(sys.stdin)
    if 'facts' in job:
        print(json.dumps(facts(job['facts'])))
    elif 'schedule' in job:
        print(json.dumps(schedule(job['schedule'])))
    else:
        raise SystemExit(__doc__)
