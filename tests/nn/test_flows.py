"""Flows: MADE is autoregressive; MAF, IAF and RealNVP chains invert exactly with the right log-determinant."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from builders import randomise

from tfvae.nn import flows

D = 4





def made_network(context_dim=0):
    made = flows.MADE(D, hidden_units=[16, 16])
    made.build((None, D), (None, context_dim) if context_dim else None)
    randomise(made)
    return made


def test_made_output_i_depends_only_on_inputs_before_i():
    made = made_network(context_dim=3)
    z = tf.random.normal([5, D], seed=1)
    context = tf.random.normal([5, 3], seed=2)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        shift, log_scale = made(z, context=context)
    for output in (shift, log_scale):
        jacobian = tape.batch_jacobian(output, z).numpy()  # [5, D_out, D_in]
        assert np.all(jacobian[:, np.triu_indices(D)[0], np.triu_indices(D)[1]] == 0)  # j >= i: no dependence
        assert np.any(jacobian[:, np.tril_indices(D, -1)[0], np.tril_indices(D, -1)[1]] != 0)


def test_made_masks_connect_every_output_after_the_first():
    masks = flows.made_masks(D, [8])
    path = masks[0] @ masks[1]  # input i -> output j through some hidden unit
    expected = np.tril(np.ones((D, D)), -1).T  # input i reaches output j iff i < j
    np.testing.assert_array_equal(path > 0, expected > 0)


def test_a_traced_made_holds_no_mask_constants():
    # An export traces each MADE in every signature: masks as constants made a two-layer MAF prior's SavedModel
    # 10 MB larger (256 x 256 floats per layer, per function).
    made = flows.MADE(16, hidden_units=[256, 256])
    made.build((None, 16))
    graph = tf.function(made).get_concrete_function(tf.TensorSpec([None, 16])).graph.as_graph_def()
    constant_bytes = sum(len(n.attr["value"].tensor.tensor_content) for n in graph.node if n.op == "Const")
    assert constant_bytes < 4096, constant_bytes


@pytest.mark.parametrize("flow", ["maf", "iaf", "real_nvp"])
def test_flow_chain_inverts_and_log_det_matches_the_jacobian(flow):
    keras.utils.set_random_seed(0)
    context = tf.random.normal([6, 3], seed=3) if flow == "iaf" else None
    if flow == "real_nvp":
        networks = [flows.CouplingNetwork(D - D // 2, hidden_units=[16]) for _ in range(3)]
        for net in networks:
            net.build((None, D // 2))
    else:
        networks = [made_network(context_dim=3 if context is not None else 0) for _ in range(3)]
    for i, net in enumerate(networks):
        randomise(net, seed=i)
    bijector = flows.flow_chain(flow, networks, D, context=context)
    x = tf.random.normal([6, D], seed=4, dtype=tf.float32)
    y = bijector.forward(x)
    recovered = bijector.inverse(tf.identity(y))  # identity: no cached pair, a real inversion
    np.testing.assert_allclose(recovered.numpy(), x.numpy(), atol=1e-4)
    fresh_x = tf.identity(x)  # bijectors cache x -> y; a fresh tensor makes the tape see the computation
    with tf.GradientTape() as tape:
        tape.watch(fresh_x)
        y = bijector.forward(fresh_x)
    _, log_abs_det = tf.linalg.slogdet(tf.cast(tape.batch_jacobian(y, fresh_x), tf.float64))
    np.testing.assert_allclose(bijector.forward_log_det_jacobian(x, event_ndims=1).numpy(), log_abs_det.numpy(),
                               atol=1e-4)
    assert np.abs(log_abs_det.numpy()).max() > 0.1  # the flow is not volume preserving here


def test_flows_start_as_the_identity():
    networks = [flows.MADE(D, [8]) for _ in range(2)]
    for net in networks:
        net.build((None, D))
    bijector = flows.flow_chain("maf", networks, D)
    x = tf.random.normal([3, D], seed=5)
    np.testing.assert_allclose(bijector.forward(x).numpy(), x.numpy()[:, ::-1], atol=1e-6)  # one reversal


def test_unknown_flow_is_refused():
    with pytest.raises(ValueError, match="flow must be one of"):
        flows.flow_chain("glow", [], D)
