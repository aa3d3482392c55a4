"""Does dividing out FER-2013's class prior help on real photos, at the model's temperature?

    python scripts/prior_correction.py --model MODEL --photos DIR --labels CSV --data FER2013

Prints one JSON line: photos with a face, and the largest face's label right with the plain
probabilities, with p / prior (renormalised) at temperature 1 (the plain softmax of scores) and
at the model's fitted temperature. The prior is the share of each label among --data's Training
faces. A photo whose label mix is not FER-2013's (wild-dev: 30 a class, 10 fear) is where a
correction could help; the argmax of p / prior is the argmax of scores / T - log prior, so T
decides how much the prior weighs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model with a fitted temperature (default: the shipped one)")
    p.add_argument("--photos", required=True, help="folder of photos")
    p.add_argument("--labels", required=True, help="file,label CSV")
    p.add_argument("--data", required=True, help="FER-2013 file: its Training split's prior")
    args = p.parse_args()

    from ferkit.data.fer2013 import load_fer2013
    from ferkit.fermodel.temperature import logits
    from ferkit.labels import LABELS
    from ferkit.predict.files import iter_inputs, read_labels
    from ferkit.predict.recognizer import Recognizer

    rec = Recognizer(args.model)
    t = rec.model.meta.temperature
    if t is None:
        sys.exit("the model has no fitted temperature (ferkit export --verify-data fits one)")
    train = load_fer2013(args.data).split("Training")
    prior = torch.tensor(np.bincount(train.labels, minlength=len(LABELS)) / len(train.labels))
    truth = read_labels(args.labels)
    rows = []
    for item in iter_inputs([args.photos]):
        label = truth.get(item.path) or truth.get(os.path.basename(item.path))
        faces = rec.predict(item.path)
        if label is not None and faces:
            rows.append((LABELS.index(label), [faces[0].scores[k] for k in LABELS]))
    y = torch.tensor([r[0] for r in rows])
    z = logits(torch.tensor([r[1] for r in rows]), rec.model.loss)
    right = {
        "plain": int((z.argmax(1) == y).sum()),
        "prior_corrected_t1": int(((z - prior.log()).argmax(1) == y).sum()),
        "prior_corrected_at_t": int(((z / t - prior.log()).argmax(1) == y).sum()),
    }
    print(json.dumps({"temperature": t, "photos_with_face": len(rows), "right": right}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
