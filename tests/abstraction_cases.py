"""One line per abstraction: tests/test_abstraction_harness.py round-trips each
through get_config/from_config and JSON, and checks every registered class has
a case here."""

from __future__ import annotations

import mariana.activations as MA
import mariana.costs as MC
import mariana.decorators as MD
import mariana.initializations as MI
import mariana.regularizations as MR
import mariana.scenari as MS

ABSTRACTION_CASES = [
    MA.Pass(), MA.ReLU(), MA.LeakyReLU(0.2), MA.ELU(0.5), MA.GELU("tanh"), MA.SiLU(), MA.Sigmoid(), MA.Tanh(),
    MA.Softmax(temperature=2.0), MA.Softplus(beta=2.0),
    MC.NegativeLogLikelihood(), MC.CategoricalCrossEntropy(), MC.BinaryCrossEntropy(), MC.MeanSquaredError(),
    MC.MeanAbsoluteError(), MC.Huber(0.5),
    MS.GradientDescent(0.1, momentum=0.9, nesterov=True, schedule=MS.StepDecay(10, 0.5)),
    MS.Adam(1e-3, weight_decay=1e-4, schedule=MS.CosineDecay(100, 0.1, warmup_steps=5)),
    MS.AdamW(1e-3, schedule=MS.ExponentialDecay(0.9, 10), clip_norm=1.0), MS.RMSProp(1e-2, momentum=0.5, clip_value=0.5),
    MS.ReduceLROnPlateau("valid", "out", "accuracy", factor=0.5, patience=3),
    MS.Fixed(), MS.Fixed("W", "b"), MS.StepDecay(5), MS.ExponentialDecay(0.5), MS.CosineDecay(10),
    MR.L1(1e-4), MR.L2(1e-3),
    MD.BinomialDropout(0.3), MD.GaussianNoise(0.1), MD.Mask([1.0, 0.0, 1.0]), MD.Clip(-1.0, 1.0), MD.Clip(high=2.0),
    MI.GlorotUniform("W"), MI.GlorotNormal("W", gain=2.0), MI.HeUniform("W"), MI.HeNormal("W", 0.1),
    MI.Normal("W", 0.02, 0.1), MI.Uniform("b", -0.1, 0.1), MI.SingleValue("b", 0.5), MI.Identity("W", 0.5),
]
