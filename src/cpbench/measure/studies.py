"""What the channel study's benchmarks share (question 5: ``bench_network.InputChannels``,
``bench_eval.EndToEndChannels``): a CPnet of ``nchan`` input channels at random weights, and the first
``nchan`` channels of the synthetic slide, unrescaled (Cellpose 3.1's resize drops the channel axis of a
1-channel image, so a 1-channel CPnet runs only at its own diameter). 4.x: Cellpose-SAM takes 3 channels
(other counts skip)."""

from __future__ import annotations

from typing import Any

from cpbench.measure import suite as _b


class ChannelStudy(_b.DeviceStage):
    """Base of the channel study: ``prepare`` loads ``self.model`` and ``self.stack`` ``(Y, X, nchan)`` uint16."""

    version = "1"
    params = (_b.STUDY_SIZES, _b.DEVICES, _b.NCHANS)
    param_names = ["size", "device", "nchan"]
    timeout = 4 * 3600.0 if _b.full_mode() else 1800.0
    rounds, repeat = _b.LONG_ROUNDS, _b.LONG_REPEAT
    memory_warmup = False
    stack: Any = None

    def prepare(self, size: str, device: str, nchan: int) -> None:
        from cpbench import stages as cs
        from cpbench.measure import inputs

        _b.require_device(device)
        _b.require_affordable_network(size, device)
        self.device = device
        self.model = cs.random_model(device, nchan=nchan)
        self.stack = inputs.channel_stack(inputs.SYNTHETIC, size, nchan)

    def predicted_bytes(self) -> int:
        from cpbench.measure import probes

        return probes.predict_eval_bytes(self.stack.shape[0] * self.stack.shape[1])
