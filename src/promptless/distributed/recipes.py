"""What a Ray worker needs, described so it can be rebuilt there: never a pickle of live objects.

A ``Recipe`` is a callable and its keyword arguments; a worker calls it to build its own
copy. An ``LM`` travels as the arguments that built it (model, endpoint, sampling, cache
location, retries), so each worker loads the embedded model once or opens its own HTTP
client. A program travels as a factory (its class, called with no arguments; a Predict or
ChainOfThought rebuilt from its saved signature; or the ``program_factory`` the user gives)
plus its JSON state (``Module.dump_state``), checked here by building one copy before any
worker starts. The metric, the adapter and callbacks travel by cloudpickle (a module-level
function goes by reference). Whatever cannot go raises ``CannotTravel`` naming it.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptless.errors import CannotTravel
from promptless.fieldtypes import parse_type
from promptless.lm.base import LM
from promptless.lm.cache import Cache
from promptless.lm.llama import LlamaBackend
from promptless.lm.openai import OpenAIBackend
from promptless.settings import Settings
from promptless.signature import InputField, OutputField, Signature

_BUILT_BACKENDS = (LlamaBackend, OpenAIBackend)  # what an LM builds for itself from its model name


@dataclass(frozen=True)
class Recipe:
    """``make(**kwargs)``: how a worker builds its own copy of something."""

    make: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        """Build the thing; an argument that is itself a Recipe (an LM's cache) is built first."""
        return self.make(**{k: v.build() if isinstance(v, Recipe) else v for k, v in self.kwargs.items()})


# -- LMs ------------------------------------------------------------------------------------------------
def lm_recipe(lm: Any, where: str) -> Recipe:
    """The arguments that rebuild ``lm`` in a worker: its own backend (model or HTTP client) and cache handle.

    An LM of another class travels only if it says how: ``worker_recipe()`` returning
    ``(callable, kwargs)`` (``ScriptedLM`` has one). The API key goes with the recipe: the worker calls the
    server the user chose with it; the file a program was loaded from never chooses that.
    """
    hook = getattr(lm, "worker_recipe", None)
    if callable(hook):
        try:
            make, kwargs = hook()
        except TypeError as error:
            raise CannotTravel(f"{where}: {error}") from None
        return Recipe(make, dict(kwargs))
    if type(lm) is not LM:
        raise CannotTravel(
            f"{where}: a {type(lm).__name__} cannot be rebuilt in a Ray worker; give it a worker_recipe() "
            "method returning (callable, kwargs) that builds it, or use promptless.LM"
        )
    backend = lm._backend
    if backend is not None and not isinstance(backend, _BUILT_BACKENDS):
        raise CannotTravel(
            f"{where}: LM({lm.model!r}) was given backend={type(backend).__name__}; a Ray worker builds its own "
            "backend from the model name, so pass the model name (or an LM subclass with worker_recipe())"
        )
    kwargs: dict[str, Any] = {
        "model": lm.model,
        "model_type": lm._model_type,
        "temperature": lm.temperature,
        "max_tokens": lm.max_tokens,
        "cache": cache_recipe(lm._cache, where),
        "api_base": lm.api_base,
        "api_key": lm._api_key,
        "timeout": lm.timeout,
        "history_size": lm.history.maxlen or 200,
        "lora": lm.lora,
        "backoff": lm.backoff,
        "callbacks": tuple(lm.callbacks),
        **lm._backend_kwargs,
    }
    return Recipe(LM, kwargs)


def cache_recipe(cache: Any, where: str) -> Any:
    """The same sqlite file (shared by the workers of one machine, WAL), or no cache; another cache must travel."""
    if cache is None:
        return False
    if type(cache) is Cache:
        where_on_disk = {"directory": str(cache.path.parent), "memory_size": cache.memory_size, "disk": cache._disk}
        return Recipe(Cache, where_on_disk)
    return must_travel(cache, f"{where}'s cache")


# -- programs -------------------------------------------------------------------------------------------
def signature_from_dict(saved: Mapping[str, Any]) -> Signature:
    """A Signature from ``Signature.to_dict()``: field names, kinds, type names, descriptions, instructions."""
    spec: dict[str, Any] = {}
    for entry in saved["fields"]:
        maker = InputField if entry.get("kind") == "input" else OutputField
        spec[str(entry["name"])] = (
            parse_type(str(entry.get("type") or "str")),
            maker(desc=entry.get("desc") or "", prefix=entry.get("prefix")),
        )
    return Signature(spec, str(saved.get("instructions") or ""))


@dataclass(frozen=True)
class SignatureFactory:
    """``cls(signature)`` for a module built from one signature (Predict, ChainOfThought, ...)."""

    cls: type
    signature: Mapping[str, Any]
    drop_first_output: bool = False  # ChainOfThought's saved signature has the reasoning field it adds itself

    def __call__(self) -> Any:
        saved = dict(self.signature)
        if self.drop_first_output:
            fields = list(saved["fields"])
            first = next(i for i, f in enumerate(fields) if f.get("kind") == "output")
            saved["fields"] = fields[:first] + fields[first + 1 :]
        return self.cls(signature_from_dict(saved))


@dataclass(frozen=True)
class ProgramRecipe:
    """A factory for the program's structure, its JSON state, and what its predictors hold outside the state."""

    factory: Callable[[], Any]
    state: Mapping[str, Any]
    artifact_dir: str
    lms: Mapping[str, int] = field(default_factory=dict)  # predictor -> index in the job's LM recipes
    configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # exact: the user's own settings
    adapters: Mapping[str, Any] = field(default_factory=dict)
    callbacks: Mapping[str, tuple] = field(default_factory=dict)

    def build(self, lms: list[Any]) -> Any:
        program = self.factory()
        program.load_state(dict(self.state), strict=True, artifact_dir=self.artifact_dir)
        predictors = dict(program.named_predictors())
        for name, index in self.lms.items():
            predictors[name].lm = lms[index]
        for name, config in self.configs.items():
            predictors[name].config = dict(config)
        for name, adapter in self.adapters.items():
            predictors[name].adapter = adapter
        for name, callbacks in self.callbacks.items():
            predictors[name].callbacks = list(callbacks)
        return program


def program_recipe(program: Any, factory: Callable[[], Any] | None, add_lm: Callable[[Any, str], int]) -> ProgramRecipe:
    """Describe ``program``; ``add_lm(lm, where)`` registers a predictor's own LM and returns its index."""
    if not callable(getattr(program, "dump_state", None)):
        raise CannotTravel(
            f"a Ray executor runs promptless Modules (rebuilt from their saved state); got {type(program).__name__}"
        )
    artifact_dir = str(Path.cwd().resolve())
    state = program.dump_state(artifact_dir)
    lms: dict[str, int] = {}
    configs: dict[str, dict[str, Any]] = {}
    adapters: dict[str, Any] = {}
    callbacks: dict[str, tuple] = {}
    for name, predictor in program.named_predictors():
        if getattr(predictor, "lm", None) is not None:
            lms[name] = add_lm(predictor.lm, f"predictor {name!r}'s lm")
        configs[name] = dict(getattr(predictor, "config", {}) or {})
        if getattr(predictor, "adapter", None) is not None:
            adapters[name] = must_travel(predictor.adapter, f"predictor {name!r}'s adapter")
        if getattr(predictor, "callbacks", None):
            callbacks[name] = must_travel(tuple(predictor.callbacks), f"predictor {name!r}'s callbacks")
    chosen = factory if factory is not None else default_factory(program, state, artifact_dir)
    factory = must_travel(chosen, "program_factory")
    recipe = ProgramRecipe(factory, state, artifact_dir, lms, configs, adapters, callbacks)
    check_rebuilds(recipe, program)
    return recipe


@dataclass(frozen=True)
class MembersFactory:
    """``build([member() for member in members], **settings)``: a module made of other programs (an ensemble)."""

    build: Callable[..., Any]
    members: tuple[Callable[[], Any], ...]
    settings: Mapping[str, Any]

    def __call__(self) -> Any:
        return self.build([member() for member in self.members], **self.settings)


def default_factory(program: Any, state: Mapping[str, Any], artifact_dir: str) -> Callable[[], Any]:
    """How a worker builds the shape of ``program``: its ``rebuild_parts()``, its bare class, or its signature."""
    parts = getattr(program, "rebuild_parts", None)
    if callable(parts):
        build, members, settings = parts()
        factories = tuple(default_factory(m, m.dump_state(artifact_dir), artifact_dir) for m in members)
        return MembersFactory(build, factories, dict(settings))
    cls = type(program)
    try:
        inspect.signature(cls).bind()
        return cls
    except (TypeError, ValueError):
        pass
    predictors = program.named_predictors()
    if len(predictors) == 1 and hasattr(predictors[0][1], "signature"):
        saved = predictors[0][1].signature.to_dict()
        for candidate in (SignatureFactory(cls, saved), SignatureFactory(cls, saved, drop_first_output=True)):
            try:
                candidate().load_state(dict(state), strict=True, artifact_dir=artifact_dir)
            except Exception:  # not this shape (or a type name parse_type cannot read): try the next
                continue
            return candidate
    raise CannotTravel(
        f"a Ray worker rebuilds the program as factory() + load_state(its saved state), and {cls.__name__}() "
        "needs arguments; pass RayExecutor(program_factory=...) with a module-level function or class "
        f"that builds a fresh {cls.__name__}"
    )


def check_rebuilds(recipe: ProgramRecipe, program: Any) -> None:
    """Build one copy here, before any worker starts, so a factory that builds another shape fails at once."""
    try:
        copy = recipe.factory()
        copy.load_state(dict(recipe.state), strict=True, artifact_dir=recipe.artifact_dir)
    except Exception as error:
        raise CannotTravel(
            f"the program_factory for {type(program).__name__} does not rebuild it: {type(error).__name__}: {error}"
        ) from error


# -- settings -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerSettings:
    """The settings a worker runs every example under (the usage tracker and the budget are the run's own)."""

    lm: int | None  # index in the job's LM recipes
    adapter: Any
    callbacks: tuple
    max_parse_retries: int
    rm: Any
    prices: Any


def worker_settings(settings: Settings, add_lm: Callable[[Any, str], int]) -> WorkerSettings:
    """What of the settings in force crosses to the workers; a trace or a stream sink cannot (they live here)."""
    if settings.trace is not None:
        raise CannotTravel("a trace is being collected (settings.trace); a Ray executor cannot fill it from workers")
    if settings.stream_sink is not None:
        raise CannotTravel("promptless.stream() is active; streamed pieces cannot come back from Ray workers")
    return WorkerSettings(
        lm=add_lm(settings.lm, "the configured lm") if settings.lm is not None else None,
        adapter=must_travel(settings.adapter, "the configured adapter"),
        callbacks=must_travel(tuple(settings.callbacks), "the configured callbacks"),
        max_parse_retries=settings.max_parse_retries,
        rm=must_travel(settings.rm, "the configured rm (retriever)"),
        prices=must_travel(settings.prices, "the configured prices"),
    )


@dataclass(frozen=True)
class Job:
    """Everything one ``map_program`` call sends each worker, pickled once."""

    lms: list[Recipe]
    settings: WorkerSettings
    program: ProgramRecipe
    metric: Any
    sys_path: list[str]


@dataclass
class JobBuilder:
    """Collects the LMs a job names (each distinct LM object once) while describing its parts."""

    lms: list[Recipe] = field(default_factory=list)
    originals: list[Any] = field(default_factory=list)  # the driver's LM objects, for their history
    _index: dict[int, int] = field(default_factory=dict)

    def add_lm(self, lm: Any, where: str) -> int:
        if id(lm) not in self._index:
            self._index[id(lm)] = len(self.lms)
            self.lms.append(must_travel(lm_recipe(lm, where), where))
            self.originals.append(lm)
        return self._index[id(lm)]

    def build(self, program: Any, metric: Any, factory: Callable[[], Any] | None, settings: Settings) -> Job:
        described = worker_settings(settings, self.add_lm)
        recipe = program_recipe(program, factory, self.add_lm)
        if described.lm is None and not recipe.lms:
            raise CannotTravel("no LM is configured: pl.configure(lm=pl.LM(...)) before running on Ray workers")
        return Job(self.lms, described, recipe, must_travel(metric, "the metric"), [p for p in sys.path if p])


def must_travel(value: Any, what: str) -> Any:
    """``value`` if cloudpickle can send it; else ``CannotTravel`` naming ``what`` and the reason."""
    if value is None:
        return value
    try:
        pickled(value)
    except ImportError:
        raise
    except Exception as error:
        raise CannotTravel(
            f"{what} cannot be sent to Ray workers ({type(error).__name__}: {error}); a module-level function or "
            "a class of plain values travels, an object holding a lock, a connection or a live LM does not"
        ) from error
    return value


def pickled(value: Any) -> bytes:
    cloudpickle = import_ray().cloudpickle
    for module in list(sys.modules.values()):  # code defined in a module made at run time has no file to import
        if _made_at_run_time(module):
            cloudpickle.register_pickle_by_value(module)
    return cloudpickle.dumps(value)


def _made_at_run_time(module: Any) -> bool:
    """A module built with ``types.ModuleType`` (no spec, no file): workers cannot import it, so it goes by value."""
    name = getattr(module, "__name__", "__main__")
    return (
        isinstance(module, types.ModuleType)
        and name != "__main__"
        and getattr(module, "__spec__", None) is None
        and getattr(module, "__file__", None) is None
        and name not in sys.builtin_module_names
    )


def unpickled(blob: bytes) -> Any:
    return import_ray().cloudpickle.loads(blob)


INSTALL = "pip install 'promptless[ray]'"


def import_ray() -> Any:
    """Ray, or a one-line error saying what to install."""
    try:
        import ray  # lazy: Ray is an optional extra (large); only a Ray run needs it
        import ray.cloudpickle  # lazy: as above
    except ImportError:
        raise ImportError(f"RayExecutor needs Ray: {INSTALL}") from None
    return ray


def digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:16]
