"""vbench's config groups. Importing this package (Hydra does, to read pkg://vbench.conf) puts
the typed schema the YAML options name (`/schema/<group>/<kind>`) into Hydra's ConfigStore."""

from ..core.schema import register

register()
