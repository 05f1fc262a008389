#!/usr/bin/python3
"""Generates kerasopt parity fixtures (schemas/fixture.schema.json).

  /usr/bin/python3 scripts/generate_fixtures.py --all                 regenerate every shipped fixture
  /usr/bin/python3 scripts/generate_fixtures.py --engine reference --case tf-keras-float32-dense
  /usr/bin/python3 scripts/generate_fixtures.py --engine torch --all
  /usr/bin/python3 scripts/generate_fixtures.py --golden              the tf-golden transcriptions
  /usr/bin/python3 scripts/generate_fixtures.py --engine reference --spec case.json --out DIR
  /usr/bin/python3 scripts/generate_fixtures.py --engine reference --verify   sha256 of regenerated vs shipped payloads

Engines: reference (numpy, op by op, TF's op order), torch (torch.optim.NAdam, float64), tensorflow (drives
TF's own Nadam; needs TensorFlow, which kerasopt's CI does not have). Every engine uses the same seeded
gradients and the same writer; the manifest's provenance says which engine produced the numbers.
"""
import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kerasopt_fixtures import cases as C  # noqa: E402
from kerasopt_fixtures import writer  # noqa: E402
from kerasopt_fixtures.engines import ENGINES, KINDS  # noqa: E402
from kerasopt_fixtures.golden import GOLDEN  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, 'fixtures')


def spec_of(case, engine, producer, command):
    notes = ('pow: correctly rounded (glibc 2.28+ powf differs at some steps; see README "Numerical promises")'
             if engine == 'reference' else None)
    provenance = {'kind': KINDS[engine], 'producer': producer, 'command': command}
    if notes:
        provenance['notes'] = notes
    return {'name': case['name'], 'description': case['description'], 'flavour': case['flavour'], 'dtype': case['dtype'],
            'config': case['config'], 'variables': C.manifest_variables(case), 'tolerance': case['tolerance'],
            'provenance': provenance}


def produce(engine, case, command):
    initial, steps, producer = ENGINES[engine](case)
    return spec_of(case, engine, producer, command), initial, steps


def shipped_cases(engine):
    if engine == 'tensorflow':  # TF drives tf.keras and Keras 3; standalone Keras 2 needs TF 1.x (see engines.py)
        return [c for c in C.shipped('reference') if c['flavour'] != 'keras2']
    return C.shipped(engine)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--engine', choices=sorted(ENGINES), default=None)
    p.add_argument('--all', action='store_true', help='every shipped case of the engine (all engines that run here, plus --golden, when no engine is given)')
    p.add_argument('--case', action='append', default=[], help='a shipped case by name (repeatable)')
    p.add_argument('--spec', help='a case as JSON (a file path or the JSON text), for ad-hoc runs')
    p.add_argument('--golden', action='store_true', help='write the tf-golden transcriptions')
    p.add_argument('--verify', action='store_true', help='regenerate in memory and print {name: [shipped sha256, regenerated sha256]}')
    p.add_argument('--out', default=FIXTURES)
    args = p.parse_args(argv)

    jobs = []  # (engine, case, command)
    if args.all and args.engine is None:
        for engine in ('reference', 'torch'):
            jobs += [(engine, c) for c in shipped_cases(engine)]
        args.golden = True
    elif args.all:
        jobs += [(args.engine, c) for c in shipped_cases(args.engine)]
    engine = args.engine or 'reference'
    if args.case:
        known = {c['name']: c for e in ('reference', 'torch') for c in C.shipped(e)}
        for name in args.case:
            if name not in known:
                p.error(f'unknown case {name!r}; shipped cases: {", ".join(sorted(known))}')
            jobs.append((engine, known[name]))
    if args.spec:
        text = open(args.spec).read() if os.path.exists(args.spec) else args.spec
        jobs.append((engine, C.case(**json.loads(text)) if 'config' not in json.loads(text) else json.loads(text)))
    if args.verify:
        report = {}
        for c in shipped_cases(engine):
            spec, initial, steps = produce(engine, c, '')
            manifest, _ = writer.build(spec, initial, steps)
            path = os.path.join(FIXTURES, c['name'] + '.json')
            shipped = json.load(open(path))['payload']['sha256'] if os.path.exists(path) else None
            report[c['name']] = [shipped, manifest['payload']['sha256']]
        print(json.dumps(report))
        return 0
    if not jobs and not args.golden:
        p.error('nothing to do: give --all, --case, --spec or --golden')
    for engine_name, c in jobs:
        command = f'/usr/bin/python3 scripts/generate_fixtures.py --engine {engine_name} --case {c["name"]}'
        if engine_name == 'tensorflow':  # never overwrite the reference fixture of the same case
            c = {**c, 'name': c['name'] + '-tensorflow'}
        spec, initial, steps = produce(engine_name, c, command)
        path = writer.write(args.out, spec, initial, steps)
        print(f'{engine_name:10s} {os.path.relpath(path, ROOT)}  ({len(steps)} steps)')
    if args.golden:
        for make in GOLDEN:
            spec, initial, steps = make()
            path = writer.write(args.out, spec, initial, steps)
            print(f'tf-golden  {os.path.relpath(path, ROOT)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
