"""Performance measurements of the engine on the current device, beside plain PyTorch loops.

``python -m bench.perf`` times, on whatever device it finds:

* training images/s and MFU of FLYP's and CaRot's step on CLIP (:mod:`.training`);
* text-encoder fine-tuning sequences/s (:mod:`.training`);
* image-tower inference images/s from tensors and end to end from JPEG files, and JPEG
  decoding alone (:mod:`.inference`);
* metric scoring seconds for 50,000 x 1,000 logits on one core (:mod:`.scoring`);

each next to a hand-written PyTorch loop doing the same work in the same run, and writes
one CSV per device plus a Markdown table in ``docs/performance.md`` (:mod:`.report`).
"""
