"""The FreeSWITCH node configuration: the minimal tree a switch boots on, pointed at this
reconciler. A room of its own: it runs once per node at install time (``pbx node-config``),
not in the daemon, and imports nothing else of ``reconciler`` but ``shipped_data``.

    settings   NodeSettings: every deployment-specific value, and the checks that keep it safe
    files      the shipped tree (top-level ``freeswitch_conf/``), rendered with the settings and written atomically
"""
