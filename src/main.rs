fn main() {
    print!("{}", identity_operator::kinds::crds_yaml());
}
