"""The service guide (办事指南): how each service of a community is done.

One YAML file per community under GUIDE_DIR (default data/guides/): the office
(where, phone, office hours) and per service the materials to bring, where, when,
how long it takes and whether it can be done online. `book` reads and checks the
files (every problem listed) and answers "how do I ..." questions; `admin` is the
admin console's upload, preview and apply.
"""
