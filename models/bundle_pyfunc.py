"""MLflow models-from-code wrapper around a prior bundle (DESIGN.md section 7).

Logged with ``mlflow.pyfunc.log_model(python_model=<this file>, artifacts={"bundle":
<bundle.json>})``: MLflow stores this source file and the JSON bundle, never a
pickle. ``predict`` turns rows of market state into quote ladders, so a registered
version can be tried from the MLflow UI or ``mlflow models predict``; the live
quoter does not use it (it reads the bundle JSON directly).

Input columns: ``mid`` (required), ``sigma_bps``, ``position``, ``margin_available``
(optional, defaults as in ``mm_runtime.quote_once``). Output: one row per ladder
level and input row, with ``row`` the input row's position.
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel


class PriorBundleModel(PythonModel):
    def load_context(self, context):
        from mm_runtime import load_bundle

        self.bundle = load_bundle(context.artifacts["bundle"])

    def predict(self, context, model_input, params=None):
        import pandas as pd

        from mm_runtime import quote_once

        rows = []
        for i, r in enumerate(model_input.to_dict(orient="records")):
            rep = quote_once(self.bundle, float(r["mid"]), float(r.get("sigma_bps", 0.0) or 0.0),
                             position=float(r.get("position", 0.0) or 0.0),
                             margin_available=float(r.get("margin_available", 10_000.0) or 10_000.0))
            for level in rep.rows:
                rows.append({"row": i, **level})
        return pd.DataFrame(rows)


mlflow.models.set_model(PriorBundleModel())
