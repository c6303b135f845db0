"""Saving the label map and managing structures (add, rename, recolour, delete, merge).

The functions take the main window: they use its document (image, labels, editor), report errors
through ``window._report`` (a dialog naming the file in interactive use, stderr headless), and ask
before destructive changes only when the window is interactive. Voxel changes (delete, merge) go
through the label editor, so they are one undo step each; names and colours are table changes and
are not in the undo history (as in :mod:`ctseg_gui.interactive.editing`).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QColorDialog, QFileDialog, QInputDialog, QMenu

from ctseg_gui.qt.dialogs import ask_yes_no

SAVE_FILTER = "NIfTI label map (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha)"
_SAVABLE = (".nii.gz", ".nii", ".nrrd", ".mha")


# ---- saving -------------------------------------------------------------------------------------
def default_labels_path(document) -> Path:
    """Where Save first offers to write: the loaded label file, else ``<image>_labels.nii.gz``."""
    if document.labels_path is not None and str(document.labels_path).endswith(_SAVABLE):
        return Path(document.labels_path)
    if document.path is not None:
        image = Path(document.path)
        stem = image.name
        for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm"):
            stem = stem.removesuffix(suffix)
        # Beside the image file, or beside (not inside) a DICOM folder.
        return image.parent / f"{stem}_labels.nii.gz"
    return Path.cwd() / "labels.nii.gz"


def save_labels(window, path: str | Path | None = None, ask: bool = False) -> bool:
    """Write the label map (NIfTI + ``.labels.json`` sidecar) on the image's grid.

    Parameters
    ----------
    window
        The main window.
    path
        Target file; ``None`` saves to the loaded label file (or asks, when there is none).
    ask
        Always ask for a file name (Save As).

    Returns
    -------
    bool
        Whether the labels are on disk now (False when cancelled or failed).
    """
    from ctseg_gui.core.errors import CtsegError
    from ctseg_gui.io import write_label_map

    document = window.document
    if document.labels is None:
        window._report("open an image before saving labels")
        return False
    if path is None:
        suggested = default_labels_path(document)
        savable_file = document.labels_path is not None and suggested == document.labels_path
        if ask or not savable_file:
            if not window.interactive:
                path = suggested
            else:
                chosen, _ = QFileDialog.getSaveFileName(
                    window, "Save labels", str(suggested), SAVE_FILTER
                )
                if not chosen:
                    return False
                path = chosen
        else:
            path = suggested
    path = Path(path)
    if not str(path).endswith(_SAVABLE):
        path = path.with_name(path.name + ".nii.gz")
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        window._report(f"{path}: labels not saved: {folder} is a file, not a folder")
        return False
    try:
        written = write_label_map(document.labels, path)
    except CtsegError as error:
        window._report(f"Labels not saved: {error}")
        return False
    except OSError as error:
        window._report(f"{path}: labels not saved: {error.strerror or error}")
        return False
    document.labels_path = Path(written)
    document.editor.mark_saved()
    if window.autosave is not None:
        window.autosave.discard()
    window.statusBar().showMessage(f"Labels saved to {written}", 8000)
    return True


# ---- structures ---------------------------------------------------------------------------------
def _confirm(window, title: str, text: str) -> bool:
    if not window.interactive:
        return True
    return ask_yes_no(window, title, text)


def _name(document, value: int) -> str:
    table = document.labels.table
    return table[value].name if value in table else f"label {value}"


def add_structure(window, name: str | None = None) -> int | None:
    """Add a structure (asking for its name) and make it the active one; returns its value."""
    from ctseg_gui.interactive import editing

    document = window.document
    if document.labels is None:
        return None
    table = document.labels.table
    if name is None:
        suggestion = f"structure {table.next_free_value()}"
        if not window.interactive:
            name = suggestion
        else:
            name, ok = QInputDialog.getText(window, "New structure", "Name:", text=suggestion)
            if not ok or not name.strip():
                return None
    value = editing.add_label(table, name.strip())
    document.table_changed.emit()
    window.state.active_label = value
    return value


def rename_structure(window, value: int, name: str | None = None) -> bool:
    """Rename structure ``value`` (asking for the name when not given)."""
    from ctseg_gui.interactive import editing

    document = window.document
    if document.labels is None:
        return False
    if name is None:
        name, ok = QInputDialog.getText(
            window, "Rename structure", "Name:", text=_name(document, value)
        )
        if not ok:
            return False
    document.labels.table.ensure([value])
    try:
        editing.rename_label(document.labels.table, value, name)
    except ValueError as error:
        window._report(str(error))
        return False
    document.table_changed.emit()
    return True


def recolour_structure(window, value: int, color: tuple[int, int, int] | None = None) -> bool:
    """Give structure ``value`` a new colour (a colour dialog when not given)."""
    from ctseg_gui.interactive import editing

    document = window.document
    if document.labels is None:
        return False
    document.labels.table.ensure([value])
    if color is None:
        chosen = QColorDialog.getColor(
            QColor(*document.labels.table[value].color), window, "Structure colour"
        )
        if not chosen.isValid():
            return False
        color = (chosen.red(), chosen.green(), chosen.blue())
    editing.recolour_label(document.labels.table, value, color)
    document.table_changed.emit()
    return True


def delete_structure(window, value: int) -> bool:
    """Clear structure ``value``'s voxels (one undo step) and remove it, after asking."""
    from ctseg_gui.interactive import editing

    document = window.document
    if document.labels is None:
        return False
    if not _confirm(
        window,
        "Delete structure",
        f"Delete '{_name(document, value)}' ({value}) and clear its voxels?\n"
        "The voxels can be restored with Undo.",
    ):
        return False
    editing.delete_label(document.editor, value)
    document.table_changed.emit()
    return True


def merge_structure(window, source: int, target: int | None = None) -> bool:
    """Relabel ``source`` as ``target`` (one undo step) and remove ``source``, after asking."""
    from ctseg_gui.interactive import editing

    document = window.document
    if document.labels is None:
        return False
    others = [e for e in document.labels.table if e.value != source]
    if target is None:
        if not others or not window.interactive:
            return False
        items = [f"{e.value}: {e.name}" for e in others]
        item, ok = QInputDialog.getItem(
            window, "Merge structure", f"Merge '{_name(document, source)}' into:", items, 0, False
        )
        if not ok:
            return False
        target = others[items.index(item)].value
    if source == target:
        return False
    if not _confirm(
        window,
        "Merge structures",
        f"Merge '{_name(document, source)}' ({source}) into '{_name(document, target)}' "
        f"({target})?\nThe voxels can be restored with Undo.",
    ):
        return False
    document.labels.table.ensure([target])
    editing.merge_labels(document.editor, source, target)
    if window.state.active_label == source:
        window.state.active_label = target
    document.table_changed.emit()
    return True


def structure_menu(window, value: int | None, parent=None) -> QMenu:
    """The structure actions for ``value`` (None: only *New*), for a menu or context menu."""
    menu = QMenu(parent or window)
    fill_structure_menu(menu, window, value)
    return menu


def fill_structure_menu(menu: QMenu, window, value: int | None) -> None:
    """Put New / Rename / Colour / Merge / Delete for structure ``value`` into ``menu``."""
    menu.addAction("New structure…", lambda: add_structure(window))
    if value is not None:
        name = _name(window.document, value)
        menu.addSeparator()
        menu.addAction(f"Rename '{name}'…", lambda: rename_structure(window, value))
        menu.addAction(f"Colour of '{name}'…", lambda: recolour_structure(window, value))
        menu.addAction(f"Merge '{name}' into…", lambda: merge_structure(window, value))
        menu.addAction(f"Delete '{name}'…", lambda: delete_structure(window, value))


def attach_label_table_menu(window) -> bool:
    """Give the label panel's table a context menu of structure actions (when it has a table)."""
    from PySide6.QtCore import Qt

    panel = window.label_panel
    table = getattr(panel, "table", None)
    if table is None or not hasattr(panel, "model") or not hasattr(panel, "proxy"):
        return False
    table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

    def show(pos) -> None:
        index = table.indexAt(pos)
        value = None
        if index.isValid():
            value = panel.model.value_at(panel.proxy.mapToSource(index).row())
        menu = structure_menu(window, value, table)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        window.label_context_menu = menu  # the menu shown last (tests read it)
        menu.popup(table.viewport().mapToGlobal(pos))

    table.customContextMenuRequested.connect(show)
    return True
