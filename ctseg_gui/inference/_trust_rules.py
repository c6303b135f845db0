"""What a bundle config would run, and which of it is known to be safe (see :mod:`.trust`).

MONAI evaluates every string that starts with ``$`` with Python's ``eval`` (``$import x`` imports a
module), and instantiates every ``_target_`` by name (short names are looked up in MONAI, dotted
names are imported with ``pydoc.locate``). This module reads those strings with Python's ``ast``
and accepts only the vocabulary the model zoo's bundles use: device selection, ``torch`` and
``monai`` constructors and functions from modules that compute (networks, transforms, inferers,
handlers, losses, metrics, data, engines, optimizers), ``@`` references, literals, arithmetic,
comprehensions, lambdas, a few harmless built-ins and ``os.path`` / ``glob`` look-ups. Anything
else (``os.system``, ``open``, ``__import__``, a dunder attribute, an unknown module, the bundle's
own ``scripts``) is reported, and the bundle then needs the user's trust.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
from functools import cache


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Modules an ``$import`` may bring in: importing them runs no code of the bundle's.
SAFE_IMPORTS = (
    "glob",
    "os",
    "numpy",
    "torch",
    "monai",
    "logging",
    "math",
    "ignite",
    "copy",
    "json",
    "datetime",
)
# Names MONAI's ConfigParser puts in every expression's globals.
DEFAULT_GLOBALS = {"monai": "monai", "torch": "torch", "np": "numpy", "numpy": "numpy"}
SAFE_BUILTINS = _words(
    "abs all any bool dict divmod enumerate filter float frozenset int isinstance len list map "
    "max min pow print range reversed round set slice sorted str sum tuple zip True False None"
)
# Dotted names that may be called or read: exact names, and prefixes ending in ".".
SAFE_PATHS = _words(
    """torch.device torch.cuda.is_available torch.cuda.device_count torch.cuda.set_device
    torch.cuda.current_device torch.tensor torch.as_tensor torch.zeros torch.ones torch.full
    torch.arange torch.linspace torch.eye torch.rand torch.randn torch.manual_seed torch.cat
    torch.stack torch.where torch.nan_to_num torch.from_numpy torch.clamp torch.argmax
    torch.softmax torch.sigmoid torch.float16 torch.float32 torch.float64 torch.bfloat16 torch.float torch.half
    torch.int8 torch.int16 torch.int32 torch.int64 torch.uint8 torch.long torch.bool
    torch.distributed.get_rank torch.distributed.get_world_size torch.distributed.is_initialized
    torch.distributed.is_available torch.backends.cudnn.benchmark
    numpy.float16 numpy.float32 numpy.float64 numpy.int8 numpy.int16 numpy.int32 numpy.int64
    numpy.uint8 numpy.uint16 numpy.bool_ numpy.array numpy.asarray numpy.zeros numpy.ones
    numpy.full numpy.arange numpy.linspace numpy.eye numpy.pi numpy.inf numpy.abs
    copy.copy copy.deepcopy json.loads json.dumps datetime.datetime.now
    os.path.join os.path.exists os.path.isfile os.path.isdir os.path.basename os.path.dirname
    os.path.abspath os.path.splitext os.path.normpath os.sep os.environ os.environ.get
    glob.glob logging.DEBUG logging.INFO logging.WARNING logging.ERROR logging.getLogger
    monai.utils.set_determinism monai.utils.first monai.utils.misc.first monai.utils.ensure_tuple monai.__version__
    """
)
SAFE_PREFIXES = (
    "torch.nn.",
    "torch.optim.",
    "torch.utils.data.",
    "math.",
    "ignite.metrics.",
    "ignite.engine.Events.",
    "monai.networks.",
    "monai.transforms.",
    "monai.inferers.",
    "monai.handlers.",
    "monai.losses.",
    "monai.metrics.",
    "monai.data.",
    "monai.engines.",
    "monai.optimizers.",
    "monai.apps.deepedit.",
    "monai.apps.deepgrow.",
    "monai.apps.detection.",
    "monai.apps.pathology.",
    "monai.apps.nuclick.",
    "monai.apps.vista3d.",
    "monai.utils.enums.",
    "monai.utils.CommonKeys.",
    "monai.config.",
)
# Parts that never belong to a known-safe name, even under a safe prefix (code loaders,
# downloads, subprocesses).
UNSAFE_PARTS = _words("hub jit load system exec eval instantiate locate extractall")
# ... and parts that contain these (``pickle_operations`` unpickles bytes from the config).
UNSAFE_WORDS = (
    "pickle", "marshal", "subprocess", "popen", "ctypes", "cpp_extension", "run_cmd",
    "optional_import", "load_submodules", "download", "torchscript", "shutil",
)  # fmt: skip
# Arguments that make a known-safe loader unpickle files (PersistentDataset, NumpyReader...).
PICKLE_SWITCHES = {"weights_only": False, "allow_pickle": True}
# Switches an expression may set with setattr(module, name, value).
SETTABLE = {"torch.backends.cudnn": ("benchmark", "deterministic")}
# Methods that reach attributes through format strings.
UNSAFE_METHODS = frozenset({"format", "format_map"})
REF = re.compile(r"@(?:\w*)(?:#\w*)*")
_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Lambda, ast.IfExp, ast.Dict, ast.Set,
    ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Compare, ast.Call,
    ast.Constant, ast.Attribute, ast.Subscript, ast.Starred, ast.Name, ast.List, ast.Tuple,
    ast.Slice, ast.keyword, ast.comprehension, ast.arguments, ast.arg, ast.operator, ast.boolop,
    ast.unaryop, ast.cmpop, ast.expr_context, ast.JoinedStr, ast.FormattedValue,
)  # fmt: skip


def safe_path(path: str) -> bool:
    """Whether a dotted name (``torch.device``, ``monai.transforms.Spacingd``) is known-safe."""
    parts = path.split(".")
    if any(p.startswith("_") and p != "__version__" for p in parts):
        return False
    if any(p in UNSAFE_PARTS or any(w in p.lower() for w in UNSAFE_WORDS) for p in parts):
        return False
    return path in SAFE_PATHS or path.startswith(SAFE_PREFIXES)


def safe_import(module: str) -> bool:
    """Whether ``import module`` only loads a known library (not the bundle's own code)."""
    return module.split(".")[0] in SAFE_IMPORTS and not any(
        p.startswith("_") for p in module.split(".")
    )


def import_binding(expression: str) -> tuple[str, str] | None:
    """``(bound name, dotted path)`` of an import statement (as MONAI reads it), else None."""
    try:
        node = next(iter(ast.iter_child_nodes(ast.parse(expression))), None)
    except SyntaxError:
        return None
    if isinstance(node, ast.Import) and node.names:
        alias = node.names[0]
        return (
            alias.asname or alias.name.split(".")[0],
            alias.name if alias.asname else alias.name.split(".")[0],
        )
    if isinstance(node, ast.ImportFrom) and node.names and node.module:
        alias = node.names[0]
        return (alias.asname or alias.name, f"{node.module}.{alias.name}")
    return None


def check_import(expression: str) -> list[str]:
    """Problems of a ``$import ...`` string (every statement in it, not only the first)."""
    try:
        tree = ast.parse(expression)
    except SyntaxError as error:
        return [f"not valid Python ({error.msg})"]
    problems = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else ["." * node.level]
        else:
            problems.append("runs a statement besides the import")
            continue
        problems += [f"imports {name}" for name in names if not safe_import(name)]
    return problems


def check_expression(expression: str, modules: dict[str, str]) -> list[str]:
    """Problems of a ``$`` expression (without the ``$``); empty when it is known-safe.

    ``modules`` maps names bound by the config's imports (and ``@id`` of import items, written
    ``@id``) to dotted module paths.
    """
    refs: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:
        name = f"_ref{len(refs)}_"
        refs[name] = match.group(0)
        return name

    source = REF.sub(placeholder, expression)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as error:
        return [f"not a Python expression ({error.msg})"]
    scope = {**DEFAULT_GLOBALS, **{k: v for k, v in modules.items() if not k.startswith("@")}}
    scope.update({name: modules[ref] for name, ref in refs.items() if ref in modules})
    local = set(refs) - set(scope)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Lambda, ast.comprehension)):
            targets = node.args.args if isinstance(node, ast.Lambda) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, (ast.Name, ast.arg)):
                        local.add(sub.id if isinstance(sub, ast.Name) else sub.arg)
    problems: list[str] = []
    _Checker(scope, local, problems).visit(tree)
    return list(dict.fromkeys(problems))


class _Checker(ast.NodeVisitor):
    """Walks an expression; module paths must be known-safe, other names local or built-in."""

    def __init__(self, scope: dict[str, str], local: set[str], problems: list[str]) -> None:
        self.scope, self.local, self.problems = scope, local, problems

    def _dotted(self, node: ast.AST) -> str | None:
        """``os.path.join`` for an attribute chain rooted at a module name, else None."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.scope and node.id not in self.local:
            return ".".join([self.scope[node.id], *reversed(parts)])
        return None

    def generic_visit(self, node: ast.AST) -> None:
        if not isinstance(node, _ALLOWED_NODES):
            self.problems.append(f"uses {type(node).__name__}")
            return
        super().generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        path = self._dotted(node)
        if path is not None:
            if not safe_path(path):
                self.problems.append(f"uses {path}")
            return
        if node.attr.startswith("_"):
            self.problems.append(f"reads the hidden attribute {node.attr}")
        elif node.attr in UNSAFE_METHODS:
            self.problems.append(f"calls .{node.attr}()")
        self.visit(node.value)

    def visit_Call(self, node: ast.Call) -> None:
        for keyword in node.keywords:
            if pickle_switch(keyword.arg, getattr(keyword.value, "value", None)):
                self.problems.append(f"loads pickled data ({keyword.arg}=...)")
        # The whole-body bundle's inference config turns on cuDNN's benchmark mode this way.
        if (
            isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and "setattr" not in self.local
            and len(node.args) == 3
            and not node.keywords
            and self._dotted(node.args[0]) in SETTABLE
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in SETTABLE[self._dotted(node.args[0])]
        ):
            self.visit(node.args[2])
            return
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.local:
            return
        if node.id in self.scope:
            if not safe_path(self.scope[node.id]):
                self.problems.append(f"uses the module {self.scope[node.id]}")
        elif node.id not in SAFE_BUILTINS:
            self.problems.append(f"uses {node.id}")


@cache
def _monai_index() -> dict[str, tuple[str, ...]]:
    """MONAI's classes and functions by short name, read from its sources without importing it.

    MONAI resolves a ``_target_`` without dots among its own modules' classes and functions
    (``ComponentLocator``); the same look-up done on the source text tells which module a short
    name would come from, so ``run_cmd`` or ``download_url`` are not mistaken for transforms.
    """
    spec = importlib.util.find_spec("monai")
    if spec is None or not spec.submodule_search_locations:
        return {}
    root = list(spec.submodule_search_locations)[0]
    top = os.path.dirname(root)
    # Indented too: a function defined under a module-level ``try`` or ``if`` is found by
    # MONAI's locator; methods found on the way only add candidates, which must all be safe.
    defined = re.compile(r"^ {0,4}(?:class|def) (\w+)", re.M)
    alias = re.compile(r"^([A-Za-z]\w*(?:\s*=\s*[A-Za-z]\w*)+)\s*$", re.M)
    index: dict[str, list[str]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = os.path.relpath(path, top)[:-3].replace(os.sep, ".").removesuffix(".__init__")
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
            found = defined.findall(text)
            for chain in alias.findall(text):
                found += [n.strip() for n in chain.split("=")[:-1]]
            for short in found:
                index.setdefault(short, []).append(module)
    return {k: tuple(dict.fromkeys(v)) for k, v in index.items()}


def _located(name: str) -> tuple[str, ...]:
    """Modules MONAI's own ComponentLocator finds ``name`` in (frozen app: no sources to read)."""
    try:
        import monai.bundle  # noqa: F401 - what ConfigParser has loaded when it locates targets
        import monai.handlers  # noqa: F401
        from monai.bundle.config_item import ComponentLocator
    except ImportError:
        return ()  # no MONAI here: nothing would run either; the caller asks
    found = ComponentLocator().get_component_module_name(name)
    return (found,) if isinstance(found, str) else tuple(found or ())


def check_target(target: str, modules: dict[str, str]) -> list[str]:
    """Problems of a ``_target_`` name (a plain string; ``$`` targets are expressions)."""
    if target.startswith("@"):
        return []  # a reference: what it points at is checked where it is defined
    if "." not in target:
        index = _monai_index()
        found = index.get(target) if index else _located(target)
        if not found:
            if not index:  # MONAI's locator had no answer and there are no sources to read
                return [f"instantiates {target} (not found among MONAI's classes to check)"]
            # MONAI looks short names up among its own classes and functions only: a name it
            # does not have fails to build ("cannot locate") and runs nothing.
            return []
        bad = [f"{m}.{target}" for m in found if not safe_path(f"{m}.{target}")]
        return [f"instantiates {b}" for b in bad]
    head, _, rest = target.partition(".")
    path = f"{modules[head]}.{rest}" if head in modules and not head.startswith("@") else target
    return [] if safe_path(path) else [f"instantiates {path}"]


def pickle_switch(name: str | None, value) -> bool:
    """Whether ``name=value`` turns on unpickling (``weights_only=False``, ``allow_pickle=True``)."""
    if name not in PICKLE_SWITCHES or isinstance(value, str) and value.startswith("$"):
        return name in PICKLE_SWITCHES  # an expression: cannot tell, so ask
    return bool(value) == PICKLE_SWITCHES[name]


def check_macro(value: str) -> list[str]:
    """A ``%file.json#id`` macro copies config from another file, which is not reviewed."""
    if re.search(r"\.(json|ya?ml)", value.split("#")[0], re.IGNORECASE):
        return [f"copies config from another file ({value[1:].split('#')[0]})"]
    return []
