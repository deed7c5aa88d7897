"""The only code that talks to Docker (docker.py, through python-on-whales) and to the Redis
servers (nodes.py, through redis-py), renders templates (render.py), and brings a lab up and
down (lifecycle.py). topology.py holds the derived plan of a lab that all of them read.

Importing this package imports neither python-on-whales nor redis-py: only docker.py and
nodes.py do, and only the code that runs a lab imports them."""
