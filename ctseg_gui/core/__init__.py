"""Qt-free, VTK-free data model: volumes, label maps, label tables, edit history."""
