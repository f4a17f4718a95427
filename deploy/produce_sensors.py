"""Produce synthetic sensor readings to Kafka: the data source of the compose demo.

Each record is a JSON object with named fields, the format of ``configs/sensors-json.yaml``::

    {"sensor": "s3", "ts": 1700000000.5, "temp": 35.2, "hum": 0.41, "vib": 2.4}

drawn from :class:`streamem.synthetic.SensorModes`. Every ``--bad-every``-th record is malformed
(so the dead-letter panel has something to show) and ``--drift-after`` readings switch to the
shifted modes (so the drift alert can fire). Runs in the streamem image, which has kafka-python::

    python deploy/produce_sensors.py --bootstrap-servers kafka:9092 --topic sensors --rate 500
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator, Sequence

import numpy as np
from kafka import KafkaProducer

from streamem.synthetic import FEATURES, SensorModes

MALFORMED = b'{"temp": "hot"'


def records(seed: int, bad_every: int, drift_after: int) -> Iterator[bytes]:
    """An endless stream of JSON readings, with malformed ones and a drift as asked."""
    rng = np.random.default_rng(seed)
    modes, shifted = SensorModes.default(), SensorModes.default().shifted()
    count = 0
    while True:
        source = shifted if 0 < drift_after <= count else modes
        for row in source.sample(100, rng)[0].tolist():
            count += 1
            if bad_every and count % bad_every == 0:
                yield MALFORMED
                continue
            reading = {"sensor": f"s{count % 7}", "ts": round(time.time(), 3)}
            reading.update(zip(FEATURES, row, strict=True))
            yield json.dumps(reading).encode()


def main(argv: Sequence[str] | None = None) -> int:
    """Produce readings until ``--count`` is reached (forever by default)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="sensors")
    parser.add_argument("--rate", type=float, default=500.0, help="readings/s; 0: no limit")
    parser.add_argument("--count", type=int, default=0, help="readings to send; 0: forever")
    parser.add_argument("--bad-every", type=int, default=1000, help="0: no malformed records")
    parser.add_argument("--drift-after", type=int, default=0, help="0: no drift")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    producer = KafkaProducer(bootstrap_servers=args.bootstrap_servers, linger_ms=20, acks=1)
    started = time.monotonic()
    try:
        for sent, value in enumerate(records(args.seed, args.bad_every, args.drift_after)):
            if args.count and sent >= args.count:
                break
            producer.send(args.topic, value=value)
            ahead = started + sent / args.rate - time.monotonic() if args.rate else 0.0
            if ahead > 0:
                time.sleep(ahead)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
