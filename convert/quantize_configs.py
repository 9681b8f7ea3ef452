"""The QuantizeConfigs this project gives tfmot, where its default 8-bit scheme falls short.

tfmot's registry knows neither the in-graph normalisation (Rescaling), nor how TFLite quantizes
a bilinear resize (input and output must share one scale), nor the context module's Multiply;
and per-tensor weights need a conv config of their own (see convert/qat.py's docstring).
"""
from __future__ import annotations

from fcnedge.train.tfcompat import keras


def tfmot_module():
    """tensorflow_model_optimization: the QuantizeConfig base and the quantizers."""
    import tensorflow_model_optimization as tfmot

    return tfmot


def _quantize_config_base():
    return tfmot_module().quantization.keras.QuantizeConfig


class OutputQuantizeConfig(_quantize_config_base()):
    """Quantizes only a layer's output: for weight-free affine layers such as Rescaling."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        quantizers = tfmot_module().quantization.keras.quantizers
        return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                  narrow_range=False)]

    def get_config(self):
        return {}


class SameScaleQuantizeConfig(OutputQuantizeConfig):
    """No quantizer of its own: the output keeps the input's scale and zero point.

    TFLite's int8 RESIZE_BILINEAR requires equal input and output quantization, so the
    converter rescales anything else; without an output quantizer QAT trains the same
    arithmetic the int8 kernel runs.
    """

    def get_output_quantizers(self, layer):
        return []


def kernel_attribute(layer) -> str:
    return "depthwise_kernel" if isinstance(layer, keras.layers.DepthwiseConv2D) else "kernel"


class PerTensorConvQuantizeConfig(_quantize_config_base()):
    """Conv2D/DepthwiseConv2D with one symmetric int8 scale for the whole kernel.

    `quantize_output` is False for a conv whose only consumer is a ReLU: the ReLU quantizes
    the output, so no fake quant sits between them and the converter fuses the pair into one op.
    """

    def __init__(self, quantize_output: bool = True):
        self.quantize_output = quantize_output

    def get_weights_and_quantizers(self, layer):
        quantizers = tfmot_module().quantization.keras.quantizers
        return [(getattr(layer, kernel_attribute(layer)),
                 quantizers.LastValueQuantizer(num_bits=8, per_axis=False, symmetric=True,
                                               narrow_range=True))]

    def get_activations_and_quantizers(self, layer):
        if not self.quantize_output:
            return []
        quantizers = tfmot_module().quantization.keras.quantizers
        return [(layer.activation,
                 quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                   narrow_range=False))]

    def set_quantize_weights(self, layer, quantize_weights):
        setattr(layer, kernel_attribute(layer), quantize_weights[0])

    def set_quantize_activations(self, layer, quantize_activations):
        if self.quantize_output:
            layer.activation = quantize_activations[0]

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {"quantize_output": self.quantize_output}


class ConvReLU(keras.layers.ReLU):
    """A ReLU under another class name, out of reach of tfmot's 'ReLU after Conv2D' rule."""


def explicit_quantize_config(layer):
    """The QuantizeConfig this project sets for a layer, or None to keep tfmot's default."""
    if isinstance(layer, (keras.layers.UpSampling2D, keras.layers.Resizing)):
        return SameScaleQuantizeConfig()
    if isinstance(layer, (keras.layers.Rescaling, keras.layers.Multiply)):
        # Multiply: the context module's gate; tfmot's registry has no entry for it, and
        # TFLite's int8 MUL takes any input scales and requantizes to its own output range.
        return OutputQuantizeConfig()
    return None


def quantize_scope():
    return tfmot_module().quantization.keras.quantize_scope(
        {"OutputQuantizeConfig": OutputQuantizeConfig,
         "SameScaleQuantizeConfig": SameScaleQuantizeConfig,
         "PerTensorConvQuantizeConfig": PerTensorConvQuantizeConfig,
         "ConvReLU": ConvReLU})
