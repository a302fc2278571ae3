//! A model's weights as one vector, shared by the loop's tests.

use burn::backend::Flex;
use burn::module::Module;
use mlml_train::Classifier;

/// Every float of the model, in module order (record bytes would also hold the random
/// parameter ids, which differ between runs).
pub fn weights(model: &Classifier<Flex>) -> Vec<f32> {
    struct Floats(Vec<f32>);
    impl burn::module::ModuleVisitor<Flex> for Floats {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<Flex, D>>,
        ) {
            self.0
                .extend(param.val().into_data().to_vec::<f32>().unwrap());
        }
    }
    let mut floats = Floats(Vec::new());
    model.visit(&mut floats);
    floats.0
}
