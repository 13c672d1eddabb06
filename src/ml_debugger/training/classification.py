"""ClassificationTracer: wrap a torch classifier, run it, and record per-sample traces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ml_debugger.core import TraceSession, hash_samples
from ml_debugger.core.previews import encode_previews
from ml_debugger.store import TraceStore
from ml_debugger.tasks.classification import make_classification_batch
from ml_debugger.training._torch import FeatureCapture, extract_logits, input_arrays, to_numpy


def _distributed_rank() -> int | None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return None


class ClassificationTracer:
    """Runs a torch classifier and records logits, labels, loss, features, ids and input hashes.

    Usage (as in the reference SDK)::

        tracer = ClassificationTracer(model, model_name="resnet18", version_name="v1")
        with torch.no_grad():
            logits = tracer(images, labels, input_ids=ids, dataset_type="val", n_epoch=0)
        tracer.wait_for_save(n_epoch=0)

    Args:
        model: the ``torch.nn.Module`` to run; its output is returned unchanged.
        model_name, version_name: names the traces are stored under.
        feature_layer: name of the module whose output is recorded as features; by default the
            input of the final ``nn.Linear`` (the penultimate layer) is found automatically.
        record_features: set ``False`` to record no features.
        score_type: ``"logits"`` (default) or ``"probabilities"`` when the model ends in a softmax.
        previews: store a small JPEG of each image input for the dashboard (at most 128 px; about
            2-5 KB per image; needs Pillow); the input must be a batch of images.
        strict: raise instead of warning when the model outputs NaN or inf.
        store: a store to write to; by default the one selected by the environment (``MLD_HOME``).
    """

    def __init__(
        self,
        model: nn.Module,
        model_name: str,
        version_name: str,
        *,
        feature_layer: str | None = None,
        record_features: bool = True,
        score_type: str = "logits",
        previews: bool = False,
        strict: bool = False,
        store: TraceStore | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        self.model = model
        self.score_type = score_type
        self.previews = previews
        self._features = FeatureCapture(model, feature_layer) if record_features else None
        self._session = TraceSession(
            model_name, version_name, "classification", store=store, rank=_distributed_rank(), strict=strict
        )

    @property
    def session(self) -> TraceSession:
        return self._session

    def __call__(
        self,
        inputs: Any,
        targets: Any,
        input_ids: Any = None,
        dataset_type: str = "train",
        n_epoch: int | None = None,
        global_step: int | None = None,
    ) -> Any:
        """Run the model on ``inputs``, record the batch, and return the model's output unchanged."""
        arrays = input_arrays(inputs)
        hashes = hash_samples(arrays)
        if self._features is None:
            output = self._forward(inputs)
            features = None
        else:
            with self._features.capture(extract_logits) as holder:
                output = self._forward(inputs)
                holder.append(output)
            features = self._features.features()
        batch = make_classification_batch(
            to_numpy(extract_logits(output)),
            to_numpy(targets),
            input_hashes=hashes,
            input_ids=None if input_ids is None else to_numpy(input_ids),
            features=features,
            score_type=self.score_type,
            previews=encode_previews(list(arrays[0])) if self.previews else None,
        )
        self._session.record(batch, dataset_type=dataset_type, n_epoch=n_epoch, global_step=global_step)
        return output

    def _forward(self, inputs: Any) -> Any:
        return self.model(**inputs) if isinstance(inputs, Mapping) else self.model(inputs)

    def flush(self) -> None:
        """Block until everything traced so far is written to disk (not yet committed)."""
        self._session.flush()

    def wait_for_save(self, n_epoch: int | None = None) -> None:
        """Flush and commit ``n_epoch`` (every traced epoch when ``None``) so it can be evaluated."""
        self._session.wait_for_save(n_epoch)

    def close(self) -> None:
        """Write what is buffered, stop the writer and remove the feature hook."""
        if self._features is not None:
            self._features.remove()
        self._session.close()
