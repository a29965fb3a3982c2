"""Ray jobs that compose curators over many items; the shard writer; the catalog builder."""
