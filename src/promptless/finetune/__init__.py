"""Compiling into weights: trace steps -> training examples -> a LoRA adapter -> a GGUF file llama.cpp applies.

``dataset`` renders trace steps with the predictors' own adapters; ``tokens`` gets ids
from llama.cpp; ``train`` runs torch + PEFT on CPU (imported only when training);
``export`` writes the GGUF adapter; ``artifact`` is the record a program keeps of it
(relative path, SHA-256, base model); ``runtime`` makes the LM that runs it.
The optimizers are ``promptless.optimizers.finetune.BootstrapFinetune`` and ``BetterTogether``.
"""
